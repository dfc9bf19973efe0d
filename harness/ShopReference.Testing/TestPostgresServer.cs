using System.Globalization;
using Npgsql;
using ShopReference.Hosting;

namespace ShopReference.Testing;

/// <summary>
/// A throw-away PostgreSQL (logical decoding on, fsync off) in its own temp folder on a free port, prepared by
/// the same <see cref="PostgresCluster"/> the AppHost's Local mode uses. <see cref="CreateDatabaseAsync"/>
/// gives each test class a database of its own.
/// </summary>
public sealed class TestPostgresServer : IAsyncDisposable
{
    private readonly ServerProcess _process;
    private readonly string _directory;

    private TestPostgresServer(ServerProcess process, string directory, int port, string password)
    {
        _process = process;
        _directory = directory;
        Port = port;
        Password = password;
    }

    public int Port { get; }
    public string Password { get; }
    public int ProcessId => _process.Id;

    public string ConnectionString(string database = "postgres") =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = PostgresCluster.SuperUser,
            Password = Password,
            Database = database,
        }.ConnectionString;

    /// <param name="settings">Server settings beyond the throw-away ones (a WAL cap, say).</param>
    public static async Task<TestPostgresServer> StartAsync(TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? settings = null)
    {
        var binDirectory = ServerBinaries.FindPostgresBinDirectory()
            ?? throw new InvalidOperationException($"No PostgreSQL server binaries found. {ServerBinaries.InstallHint}");
        // World-traversable temp folder: as root the server runs as 'postgres', which must reach its data folder.
        var directory = Directory.CreateTempSubdirectory("shopref-pg-").FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, (UnixFileMode)Convert.ToInt32("755", 8));
        }
        var password = Secrets.NewPassword();
        var cluster = new PostgresCluster(binDirectory, Path.Combine(directory, "data"));
        await cluster.PrepareAsync(password, CancellationToken.None);

        var port = LocalPorts.NextFree();
        var (fileName, arguments) = cluster.ServerCommand(PostgresCluster.EphemeralSettings.Concat(settings ?? new Dictionary<string, string>())
            .ToDictionary(s => s.Key, s => s.Value));
        var process = ServerProcess.Start(fileName, [.. arguments, "-p", port.ToString(CultureInfo.InvariantCulture)]);
        var server = new TestPostgresServer(process, directory, port, password);
        await process.WaitUntilReadyAsync(server.AnswersAsync, timeout ?? TimeSpan.FromSeconds(60), "postgres");
        return server;
    }

    /// <summary>Creates a fresh database with a unique name and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 33, 63)].ToLowerInvariant();
        await using var connection = new NpgsqlConnection(ConnectionString());
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"create database \"{name}\"", connection);
        await create.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    /// <summary>Stops the server (to test what a service does while PostgreSQL is down).</summary>
    public Task StopAsync() => _process.StopAsync(TimeSpan.FromSeconds(10));

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await _process.DisposeAsync();
        TestValkeyServer.TryDelete(_directory);
    }

    private async Task<bool> AnswersAsync(CancellationToken cancellationToken)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(ConnectionString()) { Pooling = false, Timeout = 2 };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var select = new NpgsqlCommand("select 1", connection);
            return await select.ExecuteScalarAsync(cancellationToken) is 1;
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }
}
