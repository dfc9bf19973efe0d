using ShopReference.Testing;

namespace ShopReference.Tests.Infrastructure;

/// <summary>One real Valkey and PostgreSQL for every test class in the "servers" collection.</summary>
public sealed class ServersFixture : IAsyncLifetime
{
    private TestServers? _servers;

    public TestServers Servers => _servers ?? throw new InvalidOperationException("The servers have not started.");
    public TestValkey Valkey => Servers.Valkey;
    public TestPostgresServer Postgres => Servers.Postgres;

    /// <summary>
    /// Skips the calling test on a cluster run: it puts a proxy in front of the one process, or reads a single node's
    /// state, which a cluster (whose client follows redirections to every node's own port) does not have.
    /// </summary>
    public void RequireOneValkeyProcess(string why) =>
        Assert.SkipWhen(Valkey.Topology == ValkeyTopology.Cluster, $"Needs one Valkey process: {why}");

    public async ValueTask InitializeAsync() => _servers = await TestServers.StartAsync();

    public async ValueTask DisposeAsync()
    {
        if (_servers is not null)
        {
            await _servers.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ServersCollection : ICollectionFixture<ServersFixture>
{
    public const string Name = "servers";
}
