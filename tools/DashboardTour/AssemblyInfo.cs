using System.Runtime.Versioning;

// The app runs its servers as Unix processes (Local mode), and the browser is Debian's Chromium.
[assembly: UnsupportedOSPlatform("windows")]
