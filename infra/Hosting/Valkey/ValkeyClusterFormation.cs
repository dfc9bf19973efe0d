using System.Globalization;

namespace ShopReference.Hosting;

/// <summary>
/// Joins local Valkey/Redis processes started in cluster mode into one cluster: the first <c>shards</c> nodes become
/// primaries with an even share of the 16,384 slots each, the rest replicas of them in turn. What
/// <c>valkey-cli --cluster create</c> does, from C#, so the AppHost, the tests and the benchmarks need no shell.
/// Forming again over nodes that kept their <c>nodes.conf</c> (a second run on the same data folder) only waits.
/// A node that has met no other node yet but already owns slots claimed them for keys it loaded from a run that was
/// not this cluster (a single server's data folder): forming around it would leave slots nobody serves, so formation
/// refuses at once and names the node (<see cref="ValkeyClusterFormationException"/>).
/// </summary>
/// <summary>A cluster node's client port and its cluster-bus port (gossip between nodes).</summary>
public readonly record struct ValkeyNodePorts(int Port, int BusPort);

/// <summary>Forms a Valkey cluster from fresh nodes: meet, slots, replicas, and a wait until every node agrees.</summary>
public static class ValkeyClusterFormation
{
    /// <summary>The hash slots of a cluster.</summary>
    public const int Slots = 16_384;
    private const string Host = "127.0.0.1";

    /// <summary>The configuration lines a cluster node needs beside <see cref="ValkeyConfigFile"/>'s.</summary>
    /// <param name="password">The administrator's password: replicas authenticate to their primary with it.</param>
    public static IEnumerable<string> NodeSettings(string password) =>
    [
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        // A primary unreachable for 3 s is failed over by its replica: fast enough for a demonstration, slow enough
        // that a busy 2-core machine does not fail over a primary that is only starved.
        "cluster-node-timeout 3000",
        $"masterauth \"{password}\"",
        "cluster-announce-ip 127.0.0.1",
    ];

    /// <summary>Which node each replica follows: node <c>shards + i</c> replicates primary <c>i % shards</c>.</summary>
    public static int PrimaryOf(int node, int shards) => node < shards ? node : (node - shards) % shards;

    /// <summary>The slot range of primary <paramref name="shard"/> of <paramref name="shards"/>.</summary>
    public static (int First, int Last) SlotRange(int shard, int shards) =>
        (shard * Slots / shards, (shard + 1) * Slots / shards - 1);

    /// <summary>Forms the cluster of <paramref name="ports"/>: the first <paramref name="shards"/> nodes are primaries, the rest replicas.</summary>
    /// <param name="ports">Every node's client and bus port, started with <see cref="NodeSettings"/>.</param>
    /// <param name="password">The administrator's password on every node.</param>
    /// <param name="shards">How many primaries.</param>
    /// <param name="timeout">How long the whole formation may take.</param>
    /// <param name="cancellationToken">Stops the formation.</param>
    /// <param name="progress">Told each stage as it starts, for a health report that says what formation waits on.</param>
    public static async Task FormAsync(IReadOnlyList<ValkeyNodePorts> ports, string password, int shards, TimeSpan timeout,
        CancellationToken cancellationToken, IProgress<string>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ports.Count, shards);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var ct = deadline.Token;

        var clients = new RespClient[ports.Count];
        try
        {
            for (var i = 0; i < ports.Count; i++)
            {
                clients[i] = await RespClient.ConnectAsync(Host, ports[i].Port, password, ct);
            }
            if (!await IsFormedAsync(clients, shards, ct))
            {
                await RefuseForeignDataAsync(clients, ports, ct);
                progress?.Report("Forming the cluster: meeting the nodes and assigning the slots.");
                await MeetAndAssignAsync(clients, ports, shards, ct);
            }
            progress?.Report("Forming the cluster: waiting until every node sees cluster_state:ok and every replica has synced.");
            await UntilAsync(() => IsFormedAsync(clients, shards, ct), ct);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The Valkey cluster on ports {string.Join(", ", ports.Select(p => p.Port))} did not reach cluster_state:ok within {timeout.TotalSeconds:0} s.");
        }
        finally
        {
            foreach (var client in clients)
            {
                if (client is not null) await client.DisposeAsync();
            }
        }
    }

    private static async Task MeetAndAssignAsync(RespClient[] clients, IReadOnlyList<ValkeyNodePorts> ports, int shards, CancellationToken ct)
    {
        for (var i = 1; i < clients.Length; i++)
        {
            await clients[0].SendAsync(ct, "CLUSTER", "MEET", Host,
                ports[i].Port.ToString(CultureInfo.InvariantCulture), ports[i].BusPort.ToString(CultureInfo.InvariantCulture));
        }
        for (var shard = 0; shard < shards; shard++)
        {
            var (first, last) = SlotRange(shard, shards);
            if (await KnowsSlotsAsync(clients[shard], ct))
            {
                continue; // a node that kept its configuration
            }
            await clients[shard].SendAsync(ct, "CLUSTER", "ADDSLOTSRANGE", first.ToString(CultureInfo.InvariantCulture), last.ToString(CultureInfo.InvariantCulture));
        }
        var primaryIds = new string[shards];
        for (var shard = 0; shard < shards; shard++)
        {
            primaryIds[shard] = await clients[shard].TextAsync(ct, "CLUSTER", "MYID");
        }
        for (var node = shards; node < clients.Length; node++)
        {
            var client = clients[node];
            var primaryId = primaryIds[PrimaryOf(node, shards)];
            // A node can only follow a primary it has heard of through the gossip that MEET started.
            await UntilAsync(async () => (await client.TextAsync(ct, "CLUSTER", "NODES")).Contains(primaryId, StringComparison.Ordinal), ct);
            await client.SendAsync(ct, "CLUSTER", "REPLICATE", primaryId);
        }
    }

    // A node alone (it knows only itself) that owns slots took them for the keys it loaded at start.
    private static async Task RefuseForeignDataAsync(RespClient[] clients, IReadOnlyList<ValkeyNodePorts> ports, CancellationToken ct)
    {
        for (var i = 0; i < clients.Length; i++)
        {
            var info = await clients[i].TextAsync(ct, "CLUSTER", "INFO");
            if (Field(info, "cluster_known_nodes") == "1" && Field(info, "cluster_slots_assigned") is not ("0" or null)
                && await clients[i].SendAsync(ct, "DBSIZE") is long keys and > 0)
            {
                throw new ValkeyClusterFormationException(ports[i].Port,
                    $"The node on port {ports[i].Port} is not part of this cluster but loaded {keys} keys at start, from data a " +
                    "server that was not this cluster wrote (one Valkey?). A cluster cannot form around it.");
            }
        }
    }

    private static async Task<bool> KnowsSlotsAsync(RespClient client, CancellationToken ct) =>
        Field(await client.TextAsync(ct, "CLUSTER", "INFO"), "cluster_slots_assigned") is not ("0" or null);

    // Formed: every node sees the whole cluster healthy, all but the primaries are replicas (which node is which may
    // have changed since a failover), and every replica's link to its primary is up.
    private static async Task<bool> IsFormedAsync(RespClient[] clients, int shards, CancellationToken ct)
    {
        var replicas = 0;
        foreach (var client in clients)
        {
            var info = await client.TextAsync(ct, "CLUSTER", "INFO");
            if (Field(info, "cluster_state") != "ok" || Field(info, "cluster_known_nodes") != clients.Length.ToString(CultureInfo.InvariantCulture))
            {
                return false;
            }
            var replication = await client.TextAsync(ct, "INFO", "replication");
            if (Field(replication, "role") == "slave")
            {
                if (Field(replication, "master_link_status") != "up")
                {
                    return false;
                }
                replicas++;
            }
        }
        return replicas == clients.Length - shards;
    }

    private static string? Field(string info, string name)
    {
        foreach (var line in info.Split('\n'))
        {
            if (line.StartsWith(name + ":", StringComparison.Ordinal))
            {
                return line[(name.Length + 1)..].Trim();
            }
        }
        return null;
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, CancellationToken ct)
    {
        while (!await condition())
        {
            await Task.Delay(100, ct); // polling a server's state during formation: there is no event to wait on
        }
    }
}

/// <summary>Formation refused: <see cref="Port"/> is the node that stands in the way (the message says why).</summary>
public sealed class ValkeyClusterFormationException(int port, string message) : InvalidOperationException(message)
{
    /// <summary>The node that failed.</summary>
    public int Port { get; } = port;
}
