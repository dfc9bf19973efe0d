using System.Runtime.Versioning;

// Local mode runs the servers as Unix processes (setpriv, /proc); the app harness targets Linux and macOS.
[assembly: UnsupportedOSPlatform("windows")]
