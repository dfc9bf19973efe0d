namespace ShopReference.Hosting;

/// <summary>
/// Finds the server binaries that Local mode runs. Valkey is preferred; the RESP-compatible
/// <c>redis-server</c> is accepted where Valkey is not packaged. Returns null when nothing is installed,
/// so callers can fail at once with a message that says what to install.
/// </summary>
public static class ServerBinaries
{
    /// <summary>What to install when a server binary is missing.</summary>
    public const string InstallHint =
        "Install a container runtime (Docker or Podman), or the local servers: " +
        "valkey-server (or redis-server: 'apt-get install redis-server') and PostgreSQL 15+ ('apt-get install postgresql').";

    /// <summary>valkey-server, else redis-server, from PATH.</summary>
    public static string? FindValkeyServer() => FindOnPath("valkey-server") ?? FindOnPath("redis-server");

    /// <summary>
    /// The folder holding <c>postgres</c> and <c>initdb</c>: Debian installs them outside PATH under
    /// /usr/lib/postgresql/{major}/bin, so the newest such folder wins, then PATH.
    /// </summary>
    public static string? FindPostgresBinDirectory()
    {
        const string debianRoot = "/usr/lib/postgresql";
        if (Directory.Exists(debianRoot))
        {
            var newest = Directory.GetDirectories(debianRoot)
                .Select(dir => (dir, major: int.TryParse(Path.GetFileName(dir), out var m) ? m : -1))
                .Where(x => x.major > 0 && File.Exists(Path.Combine(x.dir, "bin", "postgres")))
                .OrderByDescending(x => x.major)
                .Select(x => Path.Combine(x.dir, "bin"))
                .FirstOrDefault();
            if (newest is not null)
            {
                return newest;
            }
        }

        var onPath = FindOnPath("postgres");
        return onPath is not null && File.Exists(Path.Combine(Path.GetDirectoryName(onPath)!, "initdb"))
            ? Path.GetDirectoryName(onPath)
            : null;
    }

    /// <summary>The full path of <paramref name="name"/> on PATH, or null.</summary>
    public static string? FindOnPath(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}
