using System.Runtime.Versioning;

// The harness runs valkey-server/redis-server and the PostgreSQL binaries as local Unix processes.
[assembly: UnsupportedOSPlatform("windows")]
