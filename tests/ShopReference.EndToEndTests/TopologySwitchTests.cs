using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Switching the Valkey topology on one data folder (Local mode) works in both directions: the run's own topology, the
/// other one, then the first again, each start healthy, and the third finds the first one's Valkey data. The
/// standalone pass switches one Valkey → cluster → one Valkey; the cluster pass cluster → one Valkey → cluster.
/// </summary>
public sealed class TopologySwitchTests
{
    [Fact]
    public async Task Switching_topology_and_back_on_one_data_folder_starts_healthy_each_time_and_finds_its_data_again()
    {
        var ct = TestContext.Current.CancellationToken;
        var first = TestValkey.RequestedTopology;
        var other = first == ValkeyTopology.Cluster ? ValkeyTopology.Standalone : ValkeyTopology.Cluster;
        var marker = Guid.NewGuid().ToString("N");
        var start = await ShopApp.StartAsync(ct, topology: first);
        var dataDirectory = start.DataDirectory;
        try
        {
            await using (var valkey = await ConnectAsync(start, ct))
            {
                await valkey.GetDatabase().StringSetAsync("test:topology:marker", marker);
            }
            await StopAsync(start, ct);

            var switched = await ShopApp.StartAsync(ct, dataDirectory, topology: other);
            await using (var valkey = await ConnectAsync(switched, ct))
            {
                // Served by the other topology's own data: the marker is not there, and writes work.
                Assert.False((await valkey.GetDatabase().StringGetAsync("test:topology:marker")).HasValue);
                Assert.True(await valkey.GetDatabase().StringSetAsync("test:topology:other", "1"));
                Assert.Equal(other == ValkeyTopology.Cluster ? 6 : 1, valkey.GetServers().Length);
            }
            await StopAsync(switched, ct);

            await using var back = await ShopApp.StartAsync(ct, dataDirectory, topology: first);
            await using var again = await ConnectAsync(back, ct);
            Assert.Equal(marker, (string?)await again.GetDatabase().StringGetAsync("test:topology:marker"));
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

    // Stops the app but keeps its data folder (disposing would delete it), and waits until its servers have exited.
    private static async Task StopAsync(ShopApp app, CancellationToken ct)
    {
        int[] servers = [app.ProcessIdOf("valkey"), app.ProcessIdOf("postgres")];
        await app.StopAsync();
        foreach (var pid in servers)
        {
            await Eventually.UntilAsync(() => !AppLifetimeTests.ProcessIsAlive(pid), TimeSpan.FromSeconds(30),
                $"process {pid} still runs after the app stopped", cancellationToken: ct);
        }
    }

    private static async Task<ConnectionMultiplexer> ConnectAsync(ShopApp app, CancellationToken ct) =>
        await ConnectionMultiplexer.ConnectAsync(await app.App.GetConnectionStringAsync("valkey", ct) ?? "");
}
