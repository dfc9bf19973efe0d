namespace ShopReference.Hosting;

/// <summary>
/// Writes the configuration of a local Valkey/Redis process. The passwords (the administrator's and the ACL users')
/// live in this file, readable only by its owner, so they never show in a process list the way a
/// <c>--requirepass</c> argument would.
/// The port stays a command-line argument because the orchestrator allocates it at start.
/// </summary>
public static class ValkeyConfigFile
{
    /// <summary>Writes <c>valkey.conf</c> into <paramref name="dataDirectory"/> and returns its path.</summary>
    /// <param name="dataDirectory">The server's folder (created when missing).</param>
    /// <param name="password">The administrator's password (the default user's).</param>
    /// <param name="persistent">Append-only file and snapshots on, or no persistence at all (tests).</param>
    /// <param name="settings">More configuration lines: ACL users (with their passwords), <c>maxmemory</c> and its policy.</param>
    public static string Write(string dataDirectory, string password, bool persistent, IEnumerable<string>? settings = null)
    {
        if (password.Any(c => c is '"' or '\'' or '\\' or '\r' or '\n' or ' '))
        {
            // The config format would need escaping for these; refusing is clearer than a silent mismatch.
            throw new ArgumentException("The Valkey password must not contain quotes, backslashes, spaces or line breaks.", nameof(password));
        }
        var extra = settings?.ToList() ?? [];
        if (extra.Any(line => line.Contains('\n') || line.Contains('\r')))
        {
            throw new ArgumentException("A setting is one line.", nameof(settings));
        }

        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, "valkey.conf");
        var lines = new List<string>
        {
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            $"dir \"{dataDirectory}\"",
            $"requirepass \"{password}\"",
        };
        lines.AddRange(persistent
            ? ["appendonly yes", "save 60 1000"]
            : ["appendonly no", "save \"\""]);
        lines.AddRange(extra);

        // Create with owner-only permissions before the secret is written, not after.
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var writer = new StreamWriter(path, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options))
        {
            writer.Write(string.Join('\n', lines) + "\n");
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        return path;
    }
}
