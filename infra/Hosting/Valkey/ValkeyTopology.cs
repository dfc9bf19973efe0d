using Microsoft.Extensions.Configuration;

namespace ShopReference.Hosting;

/// <summary>
/// <c>Infrastructure:Valkey:Topology</c> = <c>Standalone</c> (default) | <c>Cluster</c>, with
/// <c>Infrastructure:Valkey:Shards</c> (default 3) and <c>Infrastructure:Valkey:ReplicasPerShard</c> (default 1).
/// </summary>
public sealed record ValkeyTopology(bool IsCluster, int Shards, int ReplicasPerShard)
{
    /// <summary>Primaries and replicas together.</summary>
    public int Nodes => Shards * (1 + ReplicasPerShard);

    /// <summary>Reads <c>Infrastructure:Valkey:Topology</c>, <c>Shards</c> and <c>ReplicasPerShard</c>.</summary>
    public static ValkeyTopology From(IConfiguration configuration)
    {
        var topology = configuration["Infrastructure:Valkey:Topology"] ?? "Standalone";
        var isCluster = topology.Equals("Cluster", StringComparison.OrdinalIgnoreCase);
        if (!isCluster && !topology.Equals("Standalone", StringComparison.OrdinalIgnoreCase))
        {
            throw new DistributedApplicationException($"Infrastructure:Valkey:Topology = '{topology}': use Standalone or Cluster.");
        }
        var shards = configuration.GetValue("Infrastructure:Valkey:Shards", 3);
        var replicas = configuration.GetValue("Infrastructure:Valkey:ReplicasPerShard", 1);
        if (shards is < 1 or > 16 || replicas is < 0 or > 5)
        {
            throw new DistributedApplicationException($"A cluster of {shards} shards with {replicas} replicas each: use 1–16 shards and 0–5 replicas.");
        }
        return new ValkeyTopology(isCluster, shards, replicas);
    }

    /// <summary>
    /// The client and cluster-bus port of each node. With a fixed Valkey port the nodes take the ports that follow
    /// it (6380, 6381, …) and the bus the usual +10000; with none (tests), free ones (<see cref="LocalPorts"/>). The ports are fixed before the
    /// start because a cluster announces them: a client sent there by MOVED must reach the node itself.
    /// </summary>
    public IReadOnlyList<ValkeyNodePorts> Ports(int? firstPort) =>
    [
        .. Enumerable.Range(0, Nodes).Select(i => firstPort is { } port && port + i + 10_000 <= 65_535
            ? new ValkeyNodePorts(port + i, port + i + 10_000)
            : new ValkeyNodePorts(LocalPorts.NextFree(), LocalPorts.NextFree())),
    ];
}
