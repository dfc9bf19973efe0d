using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.Data;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Tests.Caching;

/// <summary>The catalog's read path with Valkey stopped: served from PostgreSQL, counted, and cached again once it returns.</summary>
[Collection(ServersCollection.Name)]
public sealed class ProductCacheOutageTests(ServersFixture fixture)
{
    [Fact]
    public async Task Reads_are_served_from_postgres_while_valkey_is_down_and_caching_resumes_by_itself()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var valkey = await TestValkeyServer.StartAsync(); // its own server: this test stops it
        await using var dataSource = NpgsqlDataSource.Create(await fixture.Postgres.CreateDatabaseAsync("outage"));
        await new CatalogInitializer(dataSource, NullLogger<CatalogInitializer>.Instance).InitializeAsync(ct);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(valkey.FastFailConnectionString);
        await using var flights = new SingleFlightCache(connection, new SingleFlightOptions { Channel = "test:outage:" + Guid.NewGuid().ToString("N") });
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        await using var near = new NearCache(flights, connection, new NearCacheOptions());
        var metrics = new CatalogMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), near);
        var products = new ProductCache(near, new CatalogDatabase(dataSource), metrics, NullLogger<ProductCache>.Instance);
        await Eventually.UntilAsync(() => near.IsTrusted, TimeSpan.FromSeconds(20), "the near cache never trusted its channel", cancellationToken: ct);

        Assert.Equal(CacheOutcome.Miss, (await products.GetAsync(7, ct)).Outcome);
        Assert.True((await products.GetAsync(7, ct)).Outcome is CacheOutcome.Hit or CacheOutcome.HitLocal); // cached, not loaded again

        await valkey.StopAsync();
        for (var id = 100; id < 105; id++)
        {
            var (product, outcome) = await products.GetAsync(id, ct);
            Assert.Equal($"SKU-{id:000000}", product?.Sku);
            Assert.Equal(CacheOutcome.Miss, outcome);
        }
        Assert.Equal(5, metrics.DegradedCount);

        await valkey.RestartAsync();
        await Eventually.UntilAsync(async () => (await products.GetAsync(9, ct)).Outcome is CacheOutcome.Hit or CacheOutcome.HitLocal,
            TimeSpan.FromSeconds(30), "caching never resumed after Valkey came back", TimeSpan.FromMilliseconds(100), ct);
    }
}
