namespace ShopReference.Testing;

/// <summary>Which Valkey a test run talks to: <see cref="Standalone"/> unless <c>SHOPREF_VALKEY_TOPOLOGY=Cluster</c>.</summary>
public enum ValkeyTopology
{
    Standalone,
    Cluster,
}

/// <summary>
/// The Valkey of a test collection or a benchmark run: one process (<see cref="TestValkeyServer"/>), or a cluster of
/// three primaries with a replica each (<see cref="TestValkeyCluster"/>) when the environment variable
/// <c>SHOPREF_VALKEY_TOPOLOGY</c> is <c>Cluster</c>. CI runs the pattern tests on both; a pattern that works on one
/// and not the other (a cross-slot script) is found that way.
/// </summary>
public sealed class TestValkey : IAsyncDisposable
{
    public const string TopologyVariable = "SHOPREF_VALKEY_TOPOLOGY";

    private TestValkey(TestValkeyServer? server, TestValkeyCluster? cluster)
    {
        Server = server;
        Cluster = cluster;
    }

    /// <summary>The topology this run asked for (<see cref="TopologyVariable"/>).</summary>
    public static ValkeyTopology RequestedTopology =>
        Enum.TryParse<ValkeyTopology>(Environment.GetEnvironmentVariable(TopologyVariable), ignoreCase: true, out var topology)
            ? topology
            : ValkeyTopology.Standalone;

    public TestValkeyServer? Server { get; }
    public TestValkeyCluster? Cluster { get; }
    public ValkeyTopology Topology => Cluster is null ? ValkeyTopology.Standalone : ValkeyTopology.Cluster;

    /// <summary>StackExchange.Redis format; for a cluster, every node as a seed.</summary>
    public string ConnectionString => Server?.ConnectionString ?? Cluster!.ConnectionString;

    public string Password => Server?.Password ?? Cluster!.Password;

    /// <summary>
    /// The one process's port. A test that puts a proxy in front of a port, or stops the process, needs one process:
    /// on a cluster the client follows MOVED redirections to the nodes' own ports, past any proxy.
    /// </summary>
    public int Port => Server?.Port ?? throw new InvalidOperationException("This test needs one Valkey process; call SkipUnlessStandalone first.");

    public static async Task<TestValkey> StartAsync(ValkeyTopology? topology = null) =>
        (topology ?? RequestedTopology) == ValkeyTopology.Cluster
            ? new TestValkey(null, await TestValkeyCluster.StartAsync())
            : new TestValkey(await TestValkeyServer.StartAsync(), null);

    public async ValueTask DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}
