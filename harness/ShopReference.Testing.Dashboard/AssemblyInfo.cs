using System.Runtime.Versioning;

// The browser is Debian's Chromium, found at its Unix path.
[assembly: UnsupportedOSPlatform("windows")]
