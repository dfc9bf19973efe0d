using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.CartSession.Carts;
using StackExchange.Redis;

namespace ShopReference.Tests.Carts;

[Collection(ServersCollection.Name)]
public sealed class CartStoreTests(ServersFixture fixture)
{
    private static readonly CartLimits Limits = new() { MaxQuantityPerLine = 1_000, MaxLines = 3 };

    [Fact]
    public async Task Two_hundred_concurrent_adds_from_two_instances_lose_no_update()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        CartStore[] instances = [new(first, Limits), new(second, Limits)];
        var session = await instances[0].CreateSessionAsync();

        using var start = new ManualResetEventSlim();
        var adds = Enumerable.Range(0, 200).Select(i => Task.Run(async () =>
        {
            start.Wait();
            return await instances[i % 2].AddAsync(session, productId: 42, delta: 1);
        })).ToArray();
        start.Set();
        var results = await Task.WhenAll(adds);

        Assert.All(results, r => Assert.Equal(CartChange.Applied, r.Change));
        Assert.Equal(200, (await instances[0].GetAsync(session))![42]);
        Assert.Equal(Enumerable.Range(1, 200), results.Select(r => r.Quantity).Order()); // every add saw a distinct total
    }

    [Fact]
    public async Task Limits_refuse_a_change_and_leave_the_cart_as_it_was()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var store = new CartStore(connection, Limits with { MaxQuantityPerLine = 5 });
        var session = await store.CreateSessionAsync();
        await store.AddAsync(session, 1, 4);
        await store.AddAsync(session, 2, 1);
        await store.AddAsync(session, 3, 1);

        Assert.Equal(CartChange.OverMaxQuantity, (await store.AddAsync(session, 1, 2)).Change);
        Assert.Equal(CartChange.OverMaxLines, (await store.AddAsync(session, 4, 1)).Change);
        var removed = await store.SetAsync(session, 2, 0);
        Assert.Equal((CartChange.Applied, 0), (removed.Change, removed.Quantity));
        Assert.Equal(new Dictionary<long, int> { [1] = 4, [3] = 1 }, removed.Lines); // the cart after the change, same step
        Assert.Equal(new Dictionary<long, int> { [1] = 4, [3] = 1 }, await store.GetAsync(session));
    }

    [Fact]
    public async Task A_session_id_we_did_not_issue_reads_nothing_and_writes_nothing()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var store = new CartStore(connection, Limits);
        var forged = "forged-" + Guid.NewGuid().ToString("N");

        Assert.Null(await store.GetAsync(forged));
        Assert.Equal(CartChange.UnknownSession, (await store.AddAsync(forged, 1, 1)).Change);
        Assert.False(await connection.GetDatabase().KeyExistsAsync(CartStore.Key(forged)));
        Assert.DoesNotContain(forged, CartStore.Key(forged));
    }

    [Fact]
    public async Task A_touched_session_slides_and_an_idle_one_expires()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        // Three seconds: a touch every 150 ms then leaves 20 missed ticks of slack, so a starved test process (CI's load
        // average reaches 20-50 on two cores) does not let the session lapse between two touches.
        var idle = TimeSpan.FromSeconds(3);
        var store = new CartStore(connection, Limits with { IdleTimeout = idle });
        var session = await store.CreateSessionAsync();
        await store.AddAsync(session, 7, 1);

        // Touched every ~150 ms for two idle timeouts: it must survive both, and each touch sets its TTL back up (without
        // the slide it would fall below half the timeout within the first timeout).
        var until = DateTime.UtcNow + 2 * idle;
        using (var touch = new PeriodicTimer(TimeSpan.FromMilliseconds(150)))
        {
            while (DateTime.UtcNow < until)
            {
                Assert.NotNull(await store.GetAsync(session));
                var left = await connection.GetDatabase().KeyTimeToLiveAsync(CartStore.Key(session));
                Assert.True(left > idle / 2, $"a touch left {left} of {idle}");
                await touch.WaitForNextTickAsync(TestContext.Current.CancellationToken);
            }
        }

        // Left alone, it expires (observed without touching it: KEY EXISTS does not renew).
        await Eventually.UntilAsync(async () => !await connection.GetDatabase().KeyExistsAsync(CartStore.Key(session)),
            TimeSpan.FromSeconds(30), "the idle session never expired", cancellationToken: TestContext.Current.CancellationToken);
        Assert.Null(await store.GetAsync(session));
    }
}
