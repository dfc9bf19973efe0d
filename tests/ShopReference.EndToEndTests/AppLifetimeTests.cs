using Npgsql;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>Runs its own app twice on one data folder: stop leaves nothing behind, a second run finds the data.</summary>
public sealed class AppLifetimeTests
{
    private static readonly TimeSpan ProcessExitTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Stopping_leaves_no_server_process_and_a_second_run_reuses_the_data_with_new_passwords()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        var first = await ShopApp.StartAsync(cancellationToken);
        var dataDirectory = first.DataDirectory;
        try
        {
            var marker = Guid.NewGuid().ToString("N");
            await WriteMarkersAsync(first, marker, cancellationToken);
            int[] serverPids = [first.ProcessIdOf("valkey"), first.ProcessIdOf("postgres")];

            await first.StopAsync();

            foreach (var pid in serverPids)
            {
                await Eventually.UntilAsync(() => !ProcessIsAlive(pid), ProcessExitTimeout, $"process {pid} still runs after the app stopped", cancellationToken: cancellationToken);
            }
            Assert.Empty(ProcessesMentioning(dataDirectory));

            // The second run generates new passwords (ShopApp randomises them): they must apply to the old folder.
            await using var second = await ShopApp.StartAsync(cancellationToken, dataDirectory);
            Assert.Equal(marker, await ReadPostgresMarkerAsync(second, cancellationToken));
            Assert.Equal(marker, await ReadValkeyMarkerAsync(second));
        }
        finally
        {
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private static async Task WriteMarkersAsync(ShopApp app, string marker, CancellationToken cancellationToken)
    {
        await using (var connection = new NpgsqlConnection(await app.App.GetConnectionStringAsync("catalogdb", cancellationToken)))
        {
            await connection.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand("create table lifetime_marker(value text)", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
            await using var write = new NpgsqlCommand("insert into lifetime_marker values ($1)", connection)
            {
                Parameters = { new() { Value = marker } },
            };
            await write.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await app.App.GetConnectionStringAsync("valkey", cancellationToken) ?? "");
        await valkey.GetDatabase().StringSetAsync("test:lifetime:marker", marker);
    }

    private static async Task<string?> ReadPostgresMarkerAsync(ShopApp app, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(await app.App.GetConnectionStringAsync("catalogdb", cancellationToken));
        await connection.OpenAsync(cancellationToken);
        await using var read = new NpgsqlCommand("select value from lifetime_marker", connection);
        return (string?)await read.ExecuteScalarAsync(cancellationToken);
    }

    private static async Task<string?> ReadValkeyMarkerAsync(ShopApp app)
    {
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await app.App.GetConnectionStringAsync("valkey") ?? "");
        return await valkey.GetDatabase().StringGetAsync("test:lifetime:marker");
    }

    private static bool ProcessIsAlive(int pid)
    {
        var status = $"/proc/{pid}/status";
        // A zombie has exited; only its parent has not collected it yet.
        return File.Exists(status) && !File.ReadLines(status).Any(line => line.StartsWith("State:", StringComparison.Ordinal) && line.Contains("zombie", StringComparison.Ordinal));
    }

    private static List<int> ProcessesMentioning(string text)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains(text, StringComparison.Ordinal) && ProcessIsAlive(pid))
                {
                    found.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }
        return found;
    }
}
