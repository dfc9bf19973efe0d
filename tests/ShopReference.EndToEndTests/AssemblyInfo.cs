using System.Runtime.Versioning;

// Local mode runs the servers as Unix processes (setpriv, /proc); the suite targets Linux and macOS.
[assembly: UnsupportedOSPlatform("windows")]
