namespace ShopReference.Hosting;

/// <summary>
/// A local PostgreSQL data folder and the command that serves it. <see cref="PrepareAsync"/> runs
/// <c>initdb</c> once and then, on every start, applies the current password in single-user mode, so a password
/// parameter that was changed or regenerated never locks the user out of an existing folder.
/// PostgreSQL refuses to run as root, so as root every command runs as the <c>postgres</c> user through
/// <c>setpriv</c>, which execs in place and lets a stop signal reach the postmaster.
/// </summary>
public sealed class PostgresCluster(string binDirectory, string dataDirectory)
{
    /// <summary>The superuser <c>initdb</c> creates.</summary>
    public const string SuperUser = "postgres";
    private const string OsUser = "postgres";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The data folder, absolute.</summary>
    public string DataDirectory { get; } = Path.GetFullPath(dataDirectory);

    /// <summary>Settings every local server gets: logical decoding for change-data capture, TCP on loopback only.</summary>
    public static IReadOnlyDictionary<string, string> BaseSettings { get; } = new Dictionary<string, string>
    {
        ["listen_addresses"] = "127.0.0.1",
        ["unix_socket_directories"] = "",
        ["wal_level"] = "logical",
        ["max_replication_slots"] = "10",
        ["max_wal_senders"] = "10",
        ["max_connections"] = "200",
    };

    /// <summary>Trades durability for speed: for throw-away test servers only.</summary>
    public static IReadOnlyDictionary<string, string> EphemeralSettings { get; } = new Dictionary<string, string>
    {
        ["fsync"] = "off",
        ["synchronous_commit"] = "off",
        ["full_page_writes"] = "off",
    };

    /// <summary>Runs <c>initdb</c> when the folder is empty and sets the superuser's password for the next start.</summary>
    public async Task PrepareAsync(string password, CancellationToken cancellationToken)
    {
        if (!File.Exists(Path.Combine(DataDirectory, "PG_VERSION")))
        {
            await InitializeAsync(cancellationToken);
        }
        await WriteHostBasedAuthenticationAsync(cancellationToken);
        await SetPasswordAsync(password, cancellationToken);
    }

    /// <summary>
    /// Who may connect, rewritten at every start: any role to a database it may connect to, over loopback, with a
    /// password; physical replication (a copy of every database) only for the superuser. A service role with
    /// REPLICATION (a change feed) can therefore decode its own database's changes and nothing more.
    /// </summary>
    public const string HostBasedAuthentication = """
        # TYPE  DATABASE     USER       ADDRESS        METHOD
        local   all          postgres                  peer
        host    all          all        127.0.0.1/32   scram-sha-256
        host    all          all        ::1/128        scram-sha-256
        host    replication  postgres   127.0.0.1/32   scram-sha-256
        host    replication  postgres   ::1/128        scram-sha-256
        """;

    private async Task WriteHostBasedAuthenticationAsync(CancellationToken cancellationToken)
    {
        var path = Path.Combine(DataDirectory, "pg_hba.conf");
        await File.WriteAllTextAsync(path, HostBasedAuthentication + "\n", cancellationToken);
        if (ProcessRunner.IsRoot)
        {
            await RunAsync("chown", [$"{OsUser}:{OsUser}", path], null, cancellationToken);
        }
    }

    /// <summary>
    /// The postmaster command line; the caller appends <c>-p PORT</c> (an orchestrator knows the port only at start).
    /// </summary>
    public (string FileName, IReadOnlyList<string> Arguments) ServerCommand(IReadOnlyDictionary<string, string>? extraSettings = null)
    {
        var arguments = new List<string> { "-D", DataDirectory };
        foreach (var (name, value) in BaseSettings.Concat(extraSettings ?? new Dictionary<string, string>()))
        {
            arguments.Add("-c");
            arguments.Add($"{name}={value}");
        }
        return AsServerUser(Path.Combine(binDirectory, "postgres"), arguments);
    }

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DataDirectory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        if (ProcessRunner.IsRoot)
        {
            await RunAsync("chown", [$"{OsUser}:{OsUser}", DataDirectory], null, cancellationToken);
        }

        // No password yet: local (socket) logins use peer auth and sockets are disabled anyway;
        // TCP logins need the scram password that PrepareAsync sets right after.
        var (fileName, arguments) = AsServerUser(Path.Combine(binDirectory, "initdb"),
            ["-D", DataDirectory, "-U", SuperUser, "-E", "UTF8", "--locale=C",
             "--auth-host=scram-sha-256", "--auth-local=peer", "--no-instructions"]);
        await RunAsync(fileName, arguments, null, cancellationToken);
    }

    private async Task SetPasswordAsync(string password, CancellationToken cancellationToken)
    {
        var literal = password.Replace("'", "''", StringComparison.Ordinal);
        // Single-user mode talks over stdin, so the password never appears in a process list or a log.
        // The same server settings as a normal start: a folder with a logical replication slot refuses to open
        // with a lower wal_level, even in single-user mode.
        var singleUserArguments = new List<string> { "--single", "-D", DataDirectory, "-c", "log_statement=none" };
        foreach (var (name, value) in BaseSettings)
        {
            singleUserArguments.Add("-c");
            singleUserArguments.Add($"{name}={value}");
        }
        singleUserArguments.Add("postgres");
        var (fileName, arguments) = AsServerUser(Path.Combine(binDirectory, "postgres"), singleUserArguments);
        await RunAsync(fileName, arguments, $"ALTER ROLE {SuperUser} WITH PASSWORD '{literal}';\n", cancellationToken);
    }

    private static (string FileName, IReadOnlyList<string> Arguments) AsServerUser(string fileName, IReadOnlyList<string> arguments)
    {
        if (!ProcessRunner.IsRoot)
        {
            return (fileName, arguments);
        }
        return ("setpriv", [$"--reuid={OsUser}", $"--regid={OsUser}", "--init-groups", fileName, .. arguments]);
    }

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, string? input, CancellationToken cancellationToken)
    {
        var (exitCode, output) = await ProcessRunner.RunAsync(fileName, arguments, input, CommandTimeout, cancellationToken);
        if (exitCode != 0)
        {
            throw new InvalidOperationException(
                $"'{Path.GetFileName(fileName)} {string.Join(' ', arguments.Where(a => !a.StartsWith("--pw", StringComparison.Ordinal)))}' failed with exit code {exitCode}: {output.Trim()}");
        }
    }
}
