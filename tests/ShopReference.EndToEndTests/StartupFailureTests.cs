using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// A server that cannot start says why where the user looks: Valkey on a data folder written by a newer server (an
/// append-only file whose base RDB has a format this binary cannot read, as a Valkey 9 container leaves behind) is marked
/// "Failed to start" in the dashboard with the cause and the fix, and the gateway, which waits on it, says what it waits for.
/// </summary>
public sealed class StartupFailureTests
{
    [Fact]
    public async Task Valkey_on_a_data_folder_from_a_newer_server_is_shown_failed_with_the_fix_and_its_dependants_say_why_they_wait()
    {
        var ct = TestContext.Current.CancellationToken;
        var dataDirectory = Directory.CreateTempSubdirectory("shopref-e2e-").FullName;
        File.SetUnixFileMode(dataDirectory, (UnixFileMode)Convert.ToInt32("755", 8));
        var valkeyData = ShopApp.ValkeyDataDirectory(dataDirectory, TestValkey.RequestedTopology);
        var appendOnly = Directory.CreateDirectory(Path.Combine(valkeyData, "appendonlydir")).FullName;
        await File.WriteAllTextAsync(Path.Combine(appendOnly, "appendonly.aof.manifest"), "file appendonly.aof.1.base.rdb seq 1 type b\n", ct);
        await File.WriteAllTextAsync(Path.Combine(appendOnly, "appendonly.aof.1.base.rdb"), "REDIS0099" + new string('\0', 32), ct);

        await using var shop = await ShopApp.StartAsync(ct, dataDirectory, untilHealthy: false);

        var valkey = await PropertyAsync(shop, "valkey", "Start-up failure", ct);
        var gateway = await PropertyAsync(shop, "rate-limit", "Waiting for", ct);
        Assert.Contains("newer Valkey", valkey.Value);
        Assert.Contains(valkeyData, valkey.Value); // the folder to delete, named
        Assert.Equal(KnownResourceStates.FailedToStart, valkey.State);
        Assert.StartsWith("valkey, which failed to start", gateway.Value);
        Assert.NotEqual(KnownResourceStates.Running, gateway.State);
    }

    /// <summary>
    /// A cluster node that starts on data a single server wrote (here: an append-only file with one key in the first
    /// node's folder) claims that key's slot, and a cluster formed around it would leave slots unserved forever. Formation
    /// refuses at once: the <c>valkey</c> resource names the node and the folder to delete, and the gateway says what it
    /// waits for, instead of every service sitting in "Waiting" with no cause.
    /// </summary>
    [Fact]
    public async Task A_cluster_node_on_a_single_server_s_data_is_refused_at_once_naming_the_folder_to_delete()
    {
        var ct = TestContext.Current.CancellationToken;
        var dataDirectory = Directory.CreateTempSubdirectory("shopref-e2e-").FullName;
        File.SetUnixFileMode(dataDirectory, (UnixFileMode)Convert.ToInt32("755", 8));
        var node = Directory.CreateDirectory(ShopApp.ValkeyDataDirectory(dataDirectory, ValkeyTopology.Cluster)).FullName;
        // The append-only file a single server leaves after one write (SET test x): the node loads it at start.
        var appendOnly = Directory.CreateDirectory(Path.Combine(node, "appendonlydir")).FullName;
        await File.WriteAllTextAsync(Path.Combine(appendOnly, "appendonly.aof.manifest"), "file appendonly.aof.1.incr.aof seq 1 type i\n", ct);
        await File.WriteAllTextAsync(Path.Combine(appendOnly, "appendonly.aof.1.incr.aof"), "*3\r\n$3\r\nSET\r\n$4\r\ntest\r\n$1\r\nx\r\n", ct);

        await using var shop = await ShopApp.StartAsync(ct, dataDirectory, untilHealthy: false, topology: ValkeyTopology.Cluster);

        var valkey = await PropertyAsync(shop, "valkey", "Start-up failure", ct);
        var gateway = await PropertyAsync(shop, "rate-limit", "Waiting for", ct);
        Assert.Contains("loaded 1 keys", valkey.Value);
        Assert.Contains(node, valkey.Value); // the folder to delete, named
        Assert.StartsWith("valkey, which failed to start", gateway.Value);
        Assert.NotEqual(KnownResourceStates.Running, gateway.State);
    }

    /// <summary>
    /// A service replica that dies at start (here: its port is taken, as when another process took the port Aspire picked
    /// for it) will never be healthy. The test app's start then fails at once, naming the replica, its exit code and its
    /// error, rather than waiting out the start timeout with a log that ends in the shutdown.
    /// </summary>
    [Fact]
    public async Task A_replica_that_dies_at_start_fails_the_app_start_at_once_with_its_exit_code_and_error()
    {
        var ct = TestContext.Current.CancellationToken;
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var address = $"http://127.0.0.1:{((System.Net.IPEndPoint)taken.LocalEndpoint).Port}";

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => ShopApp.StartAsync(ct, configure: builder =>
            builder.CreateResourceBuilder<ProjectResource>("analytics")
                .WithEnvironment("Kestrel__Endpoints__taken__Url", address))); // Kestrel's endpoints win over ASPNETCORE_URLS

        Assert.Matches(@"^analytics-\w+ ended during the start \(\w+, exit code -?\d+\)", failure.Message);
        Assert.Contains("address already in use", failure.Message, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<(string Value, string? State)> PropertyAsync(ShopApp shop, string resource, string property, CancellationToken ct)
    {
        (string Value, string? State)? found = null;
        await Eventually.UntilAsync(() =>
        {
            if (shop.App.ResourceNotifications.TryGetCurrentState(resource, out var current)
                && current.Snapshot.Properties.FirstOrDefault(p => p.Name == property)?.Value is string value)
            {
                found = (value, current.Snapshot.State?.Text);
            }
            return Task.FromResult(found is not null);
        }, TimeSpan.FromMinutes(2), $"{resource} never showed '{property}'", TimeSpan.FromMilliseconds(250), ct);
        return found!.Value;
    }
}
