using System.Diagnostics;
using Npgsql;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Containers mode as a user with Docker gets it (<c>SHOPREF_INFRASTRUCTURE_MODE=Containers</c>; CI runs it on local
/// stand-ins of the public images): the servers run as their images' non-root users, and a restart finds the data in
/// the volumes with the passwords set before the first run.
/// </summary>
public sealed class ContainerModeTests
{
    [Fact]
    public async Task The_servers_run_as_non_root_users_and_a_restart_finds_the_data_in_the_volumes()
    {
        Assert.SkipUnless(ShopApp.InContainers, "Containers mode only (SHOPREF_INFRASTRUCTURE_MODE=Containers).");
        var ct = TestContext.Current.CancellationToken;
        var first = await ShopApp.StartAsync(ct);
        var dataDirectory = first.DataDirectory;
        var passwords = (first.ValkeyPassword, first.PostgresPassword);
        var prefix = Path.GetFileName(dataDirectory);
        try
        {
            // One Valkey: the container's first process is the server. A cluster: the shell that started every node.
            var valkeyPid = TestValkey.RequestedTopology == ValkeyTopology.Cluster
                ? $"$(cat /tmp/valkey-{first.App.GetEndpoint("valkey", "tcp").Port}.pid)" : "1";
            Assert.Equal("valkey", await ServerUserAsync($"{prefix}-valkey-data", valkeyPid, ct));
            Assert.Equal("postgres", await ServerUserAsync($"{prefix}-postgres-data", "1", ct));
            // The password never reaches the server's command line.
            Assert.DoesNotContain(first.ValkeyPassword, await DockerAsync(ct, "exec", await ContainerAsync($"{prefix}-valkey-data", ct),
                "sh", "-c", $"tr '\\0' ' ' < /proc/{valkeyPid}/cmdline"));

            var marker = Guid.NewGuid().ToString("N");
            await using (var valkey = await ConnectionMultiplexer.ConnectAsync(await first.App.GetConnectionStringAsync("valkey", ct) ?? ""))
            {
                await valkey.GetDatabase().StringSetAsync("test:containers:marker", marker);
            }
            await using (var connection = new NpgsqlConnection(await first.App.GetConnectionStringAsync("catalogdb", ct)))
            {
                await connection.OpenAsync(ct);
                await using var write = new NpgsqlCommand($"create table containers_marker as select '{marker}'::text as value", connection);
                await write.ExecuteNonQueryAsync(ct);
            }
            await first.StopAsync();

            await using var second = await ShopApp.StartAsync(ct, dataDirectory, passwords: passwords);
            await using (var valkey = await ConnectionMultiplexer.ConnectAsync(await second.App.GetConnectionStringAsync("valkey", ct) ?? ""))
            {
                Assert.Equal(marker, (string?)await valkey.GetDatabase().StringGetAsync("test:containers:marker"));
            }
            await using var again = new NpgsqlConnection(await second.App.GetConnectionStringAsync("catalogdb", ct));
            await again.OpenAsync(ct);
            await using var read = new NpgsqlCommand("select value from containers_marker", again);
            Assert.Equal(marker, (string?)await read.ExecuteScalarAsync(ct));
        }
        finally
        {
            await ShopApp.RemoveVolumesAsync(dataDirectory);
        }
    }

    /// <summary>
    /// A primary of the Valkey cluster in a container dies (SIGKILL, as a crash): its replica takes over within the bounds
    /// the Local-mode test holds (ValkeyClusterTests: promoted within 30 s, requests failing for under 20 s), and the
    /// entry written before the crash is still there. The services and the nodes reach each node by one announced
    /// address, so the promotion reaches the client as it would on Local mode's cluster.
    /// </summary>
    [Fact]
    public async Task Killing_a_primary_of_the_cluster_in_a_container_fails_over_and_keeps_the_entry()
    {
        Assert.SkipUnless(ShopApp.InContainers && TestValkey.RequestedTopology == ValkeyTopology.Cluster, "Containers mode on a cluster only.");
        var ct = TestContext.Current.CancellationToken;
        await using var shop = await ShopApp.StartAsync(ct);
        var container = await ContainerAsync($"{Path.GetFileName(shop.DataDirectory)}-valkey-data", ct);
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await shop.App.GetConnectionStringAsync("valkey", ct) + ",allowAdmin=true");
        var database = valkey.GetDatabase();
        var key = $"test:failover:{Guid.NewGuid():N}";
        await database.StringSetAsync(key, "kept");
        var victim = ((System.Net.IPEndPoint)database.IdentifyEndpoint(key)!).Port;
        // The entry reaches the replica before the crash (replication is asynchronous).
        Assert.Equal(1L, (long)await valkey.GetServer("127.0.0.1", victim).ExecuteAsync("WAIT", 1, 5000));

        var killed = Stopwatch.GetTimestamp();
        await DockerAsync(ct, "exec", container, "sh", "-c", $"kill -9 $(cat /tmp/valkey-{victim}.pid)");
        var survivor = valkey.GetEndPoints().Cast<System.Net.IPEndPoint>().First(e => e.Port != victim);
        TimeSpan? lastFailure = null;
        string? value = null;
        var promoted = false;
        await Eventually.UntilAsync(async () =>
        {
            // Promoted once a surviving node maps the key's slot to another node.
            promoted = promoted || ((await valkey.GetServer(survivor).ClusterNodesAsync())?.GetBySlot(key)?.EndPoint is System.Net.IPEndPoint owner && owner.Port != victim);
            try
            {
                value = await database.StringGetAsync(key);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                (lastFailure, value) = (Stopwatch.GetElapsedTime(killed), null);
            }
            return promoted && value is not null;
        }, TimeSpan.FromSeconds(30), "the key's slot was not served by a promoted replica within 30 s of its primary's death", cancellationToken: ct);
        Assert.Equal("kept", value);
        Assert.NotEqual(victim, ((System.Net.IPEndPoint)database.IdentifyEndpoint(key)!).Port);
        Assert.True(lastFailure is null || lastFailure < TimeSpan.FromSeconds(20), $"reads failed for {lastFailure?.TotalSeconds:0.0} s after the primary died");
    }

    // The user of a process in the container that mounts the volume (the server, once root was dropped).
    private static async Task<string> ServerUserAsync(string volume, string pid, CancellationToken ct)
    {
        var container = await ContainerAsync(volume, ct);
        var uid = (await DockerAsync(ct, "exec", container, "sh", "-c", $"awk '/^Uid:/ {{print $2}}' /proc/{pid}/status")).Trim();
        return (await DockerAsync(ct, "exec", container, "sh", "-c", $"getent passwd {uid} | cut -d: -f1")).Trim();
    }

    private static async Task<string> ContainerAsync(string volume, CancellationToken ct) =>
        Assert.Single((await DockerAsync(ct, "ps", "-q", "--filter", $"volume={volume}")).Split('\n', StringSplitOptions.RemoveEmptyEntries));

    private static async Task<string> DockerAsync(CancellationToken ct, params string[] arguments)
    {
        using var docker = Process.Start(new ProcessStartInfo("docker", arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = await docker.StandardOutput.ReadToEndAsync(ct);
        await docker.WaitForExitAsync(ct);
        Assert.True(docker.ExitCode == 0, $"docker {string.Join(' ', arguments)}: {await docker.StandardError.ReadToEndAsync(ct)}");
        return output;
    }
}
