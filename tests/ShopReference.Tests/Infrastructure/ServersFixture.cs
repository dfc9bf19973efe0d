using ShopReference.Testing;

namespace ShopReference.Tests.Infrastructure;

/// <summary>One real Valkey and PostgreSQL for every test class in the "servers" collection.</summary>
public sealed class ServersFixture : IAsyncLifetime
{
    private TestServers? _servers;

    public TestServers Servers => _servers ?? throw new InvalidOperationException("The servers have not started.");
    public TestValkeyServer Valkey => Servers.Valkey;
    public TestPostgresServer Postgres => Servers.Postgres;

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
