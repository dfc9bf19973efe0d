using ShopReference.Hosting;
using ShopReference.ServiceClients;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.CartSession.Carts;
using ShopReference.CartSession.Orders;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

namespace ShopReference.Tests.Carts;

/// <summary>The Valkey half of checkout, and checkout's behaviour when the catalog cannot answer (a real refused connection).</summary>
[Collection(ServersCollection.Name)]
public sealed class CheckoutTests(ServersFixture fixture)
{
    private static readonly CartLimits Limits = new();

    [Fact]
    public async Task Completing_subtracts_only_what_was_ordered_so_an_add_made_meanwhile_survives()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var (carts, claims) = (new CartStore(connection, Limits), new CheckoutClaims(connection, Limits));
        var session = await carts.CreateSessionAsync();
        await carts.AddAsync(session, 1, 3);

        var claim = await claims.ClaimAsync(session, "key-1", "f00d", "token");
        await carts.AddAsync(session, 1, 2); // while the order is being written
        await carts.AddAsync(session, 2, 1);
        await claims.CompleteAsync(session, "key-1", "f00d", orderId: 17, [(1, 3)]);

        Assert.Equal(ClaimState.Claimed, claim.State);
        Assert.Equal(new Dictionary<long, int> { [1] = 2, [2] = 1 }, await carts.GetAsync(session));
        Assert.Equal(new Claim(ClaimState.Done, "f00d", 17), await claims.ClaimAsync(session, "key-1", "f00d", "other"));
    }

    [Fact]
    public async Task Completing_an_order_twice_takes_its_lines_out_of_the_cart_once()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var (carts, claims) = (new CartStore(connection, Limits), new CheckoutClaims(connection, Limits));
        var session = await carts.CreateSessionAsync();
        await carts.AddAsync(session, 1, 5);

        var first = await claims.CompleteAsync(session, "key-1", "f00d", orderId: 21, [(1, 3)]);
        var second = await claims.CompleteAsync(session, "key-1", "f00d", orderId: 21, [(1, 3)]); // a retry after a lost answer

        Assert.Equal((true, false), (first, second));
        Assert.Equal(new Dictionary<long, int> { [1] = 2 }, await carts.GetAsync(session));
        Assert.True(await connection.GetDatabase().KeyTimeToLiveAsync(CheckoutClaims.SettledKey(session)) <= Limits.IdleTimeout);
    }

    [Fact]
    public async Task A_claim_is_held_until_its_holder_releases_it_and_only_its_holder_can()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var claims = new CheckoutClaims(connection, Limits);
        var session = await new CartStore(connection, Limits).CreateSessionAsync();

        Assert.Equal(ClaimState.Claimed, (await claims.ClaimAsync(session, "k", "beef", "holder")).State);
        Assert.Equal(new Claim(ClaimState.Pending, "beef", null), await claims.ClaimAsync(session, "k", "beef", "retry"));
        Assert.False(await claims.ReleaseAsync(session, "k", "beef", "retry"));
        Assert.True(await claims.ReleaseAsync(session, "k", "beef", "holder"));
        Assert.Equal(ClaimState.Claimed, (await claims.ClaimAsync(session, "k", "beef", "retry")).State);
        Assert.True(await connection.GetDatabase().KeyTimeToLiveAsync(CheckoutClaims.Key(session, "k")) <= CheckoutClaims.PendingTtl);
    }

    [Fact]
    public async Task An_unreachable_catalog_refuses_checkout_writes_no_order_keeps_the_cart_and_frees_the_key()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var dataSource = NpgsqlDataSource.Create(await fixture.Postgres.CreateDatabaseAsync("checkout"));
        await using var services = new ServiceCollection().AddMetrics().AddHybridCache().Services.BuildServiceProvider();
        var orders = new OrdersDatabase(dataSource, NullLogger<OrdersDatabase>.Instance);
        await orders.InitializeAsync(TestContext.Current.CancellationToken);
        var carts = new CartStore(connection, Limits);
        using var deadCatalog = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{LocalPorts.NextFree()}") }; // nothing listens
        var checkout = new CheckoutService(carts, new CheckoutClaims(connection, Limits), orders,
            new CatalogClient(deadCatalog, services.GetRequiredService<HybridCache>()), new CartSessionMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()),
            new OutboxRelay(dataSource, new EventPublisher(connection, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<EventPublisher>.Instance),
                orders, NullLogger<OutboxRelay>.Instance),
            NullLogger<CheckoutService>.Instance);
        var session = await carts.CreateSessionAsync();
        await carts.AddAsync(session, 42, 2);

        var result = await checkout.CheckoutAsync(session, "key", new CheckoutRequest("a@example.com"), visitor: null, TestContext.Current.CancellationToken);

        Assert.Equal(CheckoutOutcome.CatalogUnavailable, result.Outcome);
        await using var count = dataSource.CreateCommand("select count(*) from orders");
        Assert.Equal(0L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal(new Dictionary<long, int> { [42] = 2 }, await carts.GetAsync(session));
        Assert.Equal(ClaimState.Claimed, (await new CheckoutClaims(connection, Limits).ClaimAsync(session, "key", CheckoutService.Fingerprint(new("a@example.com")), "retry")).State);
    }
}
