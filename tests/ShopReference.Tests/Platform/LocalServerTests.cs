using Npgsql;
using ShopReference.Hosting;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

[Collection(ServersCollection.Name)]
public sealed class LocalServerTests(ServersFixture fixture)
{
    [Fact]
    public async Task Valkey_refuses_a_command_without_the_password()
    {
        // Every process: the one server, or each node of a cluster (a client that reaches one node can reach them all).
        var ports = fixture.Valkey.Cluster?.Ports ?? [fixture.Valkey.Port];
        foreach (var port in ports)
        {
            var reply = await RawResp.SendUnauthenticatedAsync("127.0.0.1", port, "SET stolen 1", TestContext.Current.CancellationToken);
            Assert.True(reply.StartsWith("-NOAUTH", StringComparison.Ordinal), $":{port} answered {reply}");
        }
        Assert.Equal(fixture.Valkey.Topology == ShopReference.Testing.ValkeyTopology.Cluster ? 6 : 1, ports.Count);
    }

    [Fact]
    public async Task Valkey_answers_with_the_password()
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var db = multiplexer.GetDatabase();
        var key = $"test:platform:{Guid.NewGuid():N}";

        await db.StringSetAsync(key, "v", TimeSpan.FromMinutes(1));

        Assert.Equal("v", (string?)await db.StringGetAsync(key));
    }

    [Fact]
    public async Task Postgres_refuses_a_wrong_password()
    {
        var wrong = new NpgsqlConnectionStringBuilder(fixture.Postgres.ConnectionString()) { Password = "wrong", Pooling = false };
        await using var connection = new NpgsqlConnection(wrong.ConnectionString);

        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync(TestContext.Current.CancellationToken));

        Assert.Equal(PostgresErrorCodes.InvalidPassword, error.SqlState);
    }

    [Fact]
    public async Task Postgres_runs_with_logical_decoding_for_change_data_capture()
    {
        await using var connection = new NpgsqlConnection(fixture.Postgres.ConnectionString());
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var show = new NpgsqlCommand("show wal_level", connection);

        Assert.Equal("logical", await show.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_changed_password_takes_effect_on_an_existing_data_folder_with_a_replication_slot()
    {
        var binDirectory = ServerBinaries.FindPostgresBinDirectory()!;
        var folder = Directory.CreateTempSubdirectory("shopref-pgpw-").FullName;
        File.SetUnixFileMode(folder, (UnixFileMode)Convert.ToInt32("755", 8));
        try
        {
            var cluster = new PostgresCluster(binDirectory, Path.Combine(folder, "data"));
            await cluster.PrepareAsync("first0password", TestContext.Current.CancellationToken);
            var initializedAt = File.GetLastWriteTimeUtc(Path.Combine(cluster.DataDirectory, "PG_VERSION"));
            await using (var first = await StartAsync(cluster))
            {
                // The catalog's change feed leaves a logical replication slot behind, which the next start must accept.
                await ExecuteAsync(first.Port, "first0password", "select pg_create_logical_replication_slot('left_behind', 'pgoutput')");
            }

            // Second run, new password (a user set or regenerated the parameter): no re-initdb, new password works.
            await cluster.PrepareAsync("second0password", TestContext.Current.CancellationToken);
            await using var server = await StartAsync(cluster);

            Assert.Equal(initializedAt, File.GetLastWriteTimeUtc(Path.Combine(cluster.DataDirectory, "PG_VERSION")));
            Assert.True(await CanLoginAsync(server.Port, "second0password"));
            Assert.False(await CanLoginAsync(server.Port, "first0password"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void The_valkey_config_file_is_readable_by_its_owner_only()
    {
        var folder = Directory.CreateTempSubdirectory("shopref-conf-").FullName;
        try
        {
            var path = ValkeyConfigFile.Write(folder, "secret0password", persistent: true);

            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Contains("requirepass \"secret0password\"", File.ReadAllText(path));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void A_password_that_would_break_the_config_file_is_refused()
    {
        var folder = Directory.CreateTempSubdirectory("shopref-conf-").FullName;
        try
        {
            Assert.Throws<ArgumentException>(() => ValkeyConfigFile.Write(folder, "bad\"quote", persistent: false));
            Assert.False(File.Exists(Path.Combine(folder, "valkey.conf")));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<ServerProcessHandle> StartAsync(PostgresCluster cluster)
    {
        var port = LocalPorts.NextFree();
        var (fileName, arguments) = cluster.ServerCommand(PostgresCluster.EphemeralSettings);
        var process = ServerProcess.Start(fileName, [.. arguments, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await process.WaitUntilReadyAsync(async _ => await CanConnectAtAllAsync(port), TimeSpan.FromSeconds(60), "postgres");
        return new ServerProcessHandle(process, port);
    }

    private static async Task ExecuteAsync(int port, string password, string sql)
    {
        var builder = new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = port, Username = "postgres", Password = password, Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<bool> CanConnectAtAllAsync(int port)
    {
        try
        {
            await CanLoginAsync(port, "probe");
            return true;
        }
        catch (NpgsqlException)
        {
            return false; // not listening yet
        }
    }

    private static async Task<bool> CanLoginAsync(int port, string password)
    {
        var builder = new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = port, Username = "postgres", Password = password, Pooling = false, Timeout = 3 };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync();
            return true;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InvalidPassword)
        {
            return false;
        }
    }

    private sealed record ServerProcessHandle(ServerProcess Process, int Port) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Process.DisposeAsync();
    }
}
