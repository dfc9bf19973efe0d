using System.Text;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Tests.Caching;

[Collection(ServersCollection.Name)]
public sealed class SingleFlightCacheTests(ServersFixture fixture)
{
    private static readonly CacheEntryOptions Entry = new() { TimeToLive = TimeSpan.FromMinutes(5) };
    private static readonly TimeSpan OriginLatency = TimeSpan.FromMilliseconds(200); // a slow origin, as in the benchmark

    private static string NewKey() => $"test:product:{{{Guid.NewGuid():N}}}";
    private static SingleFlightOptions Options(string channel, TimeSpan? lease = null, TimeSpan? wait = null) => new()
    {
        Channel = channel,
        LockLease = lease ?? TimeSpan.FromSeconds(5),
        WaitTimeout = wait ?? TimeSpan.FromSeconds(5),
    };

    [Fact]
    public async Task Hot_key_expiry_under_500_concurrent_requests_from_two_processes_loads_origin_once()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var channel = "test:filled:" + Guid.NewGuid().ToString("N");
        await using var processA = new SingleFlightCache(first, Options(channel));
        await using var processB = new SingleFlightCache(second, Options(channel));
        var key = NewKey();
        var loads = 0;
        async Task<OriginValue> Origin(CancellationToken ct)
        {
            Interlocked.Increment(ref loads);
            await Task.Delay(OriginLatency, ct);
            return new OriginValue(Encoding.UTF8.GetBytes("product"), 7);
        }

        using var start = new ManualResetEventSlim();
        var reads = Enumerable.Range(0, 500).Select(i => Task.Run(async () =>
        {
            start.Wait();
            return await (i % 2 == 0 ? processA : processB).GetOrLoadAsync(key, Origin, Entry);
        })).ToArray();
        start.Set();
        var results = await Task.WhenAll(reads).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal(1, loads);
        Assert.All(results, r => Assert.Equal("product", Encoding.UTF8.GetString(r.Payload!)));
        Assert.Equal(1, results.Count(r => r.Outcome == CacheOutcome.Miss));
        Assert.Equal(0, processA.Counters.OriginLoads + processB.Counters.OriginLoads - 1);
    }

    [Fact]
    public async Task A_lock_holder_whose_lease_expired_cannot_overwrite_the_value_of_its_successor()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var channel = "test:filled:" + Guid.NewGuid().ToString("N");
        await using var slowHolder = new SingleFlightCache(first, Options(channel, lease: TimeSpan.FromMilliseconds(300)));
        await using var successor = new SingleFlightCache(second, Options(channel));
        var key = NewKey();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var stalled = slowHolder.GetOrLoadAsync(key, async _ =>
        {
            await release.Task; // the holder stalls past its lease (a GC pause, a slow query)
            return new OriginValue(Encoding.UTF8.GetBytes("from the expired holder"), 1);
        }, Entry, TestContext.Current.CancellationToken);
        var db = first.GetDatabase();
        await WaitUntilAsync(async () => await db.KeyExistsAsync(key + ":lock"), "the holder never took the lock");
        await WaitUntilAsync(async () => !await db.KeyExistsAsync(key + ":lock"), "the lease never expired");

        var next = await successor.GetOrLoadAsync(key, _ => Task.FromResult(new OriginValue(Encoding.UTF8.GetBytes("from the successor"), 1)), Entry, TestContext.Current.CancellationToken);
        release.SetResult();
        await stalled;

        Assert.Equal(CacheOutcome.Miss, next.Outcome);
        Assert.True(CacheEnvelope.TryDecode((ReadOnlyMemory<byte>)await db.StringGetAsync(key), out var stored));
        Assert.Equal("from the successor", Encoding.UTF8.GetString(stored.Payload.Span));
        Assert.Equal(1, slowHolder.Counters.FillsRefused);
    }

    [Fact]
    public async Task A_newer_version_is_never_overwritten_by_an_older_one()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var key = NewKey();

        Assert.True(await cache.SetAsync(key, new OriginValue(Encoding.UTF8.GetBytes("v5"), 5), Entry));
        Assert.False(await cache.SetAsync(key, new OriginValue(Encoding.UTF8.GetBytes("v4"), 4), Entry));

        var read = await cache.GetOrLoadAsync(key, _ => throw new InvalidOperationException("must not load"), Entry, TestContext.Current.CancellationToken);
        Assert.Equal((CacheOutcome.Hit, 5L, "v5"), (read.Outcome, read.Version, Encoding.UTF8.GetString(read.Payload!)));
    }

    [Fact]
    public async Task An_unknown_id_is_cached_as_not_found_so_it_reaches_the_origin_once()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var key = NewKey();
        var loads = 0;

        for (var i = 0; i < 20; i++)
        {
            var read = await cache.GetOrLoadAsync(key, _ => { Interlocked.Increment(ref loads); return Task.FromResult(OriginValue.NotFound); }, Entry, TestContext.Current.CancellationToken);
            Assert.False(read.Found);
        }

        Assert.Equal(1, loads);
        Assert.InRange((await connection.GetDatabase().KeyTimeToLiveAsync(key))!.Value, TimeSpan.FromMilliseconds(1), Entry.NegativeTimeToLive);
    }

    [Fact]
    public async Task A_waiter_whose_holder_never_fills_loads_the_origin_itself_after_the_bounded_wait()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N"), wait: TimeSpan.FromMilliseconds(300)));
        var key = NewKey();
        // A holder in another process took the lock and died without filling or releasing.
        await connection.GetDatabase().StringSetAsync(key + ":lock", "dead-holder", TimeSpan.FromMinutes(1));

        var read = await cache.GetOrLoadAsync(key, _ => Task.FromResult(new OriginValue(Encoding.UTF8.GetBytes("loaded"), 1)), Entry, TestContext.Current.CancellationToken)
            .WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        Assert.Equal(CacheOutcome.Miss, read.Outcome);
        Assert.Equal(1, cache.Counters.LockWaits);
        Assert.Equal(1, cache.Counters.OriginLoads);
    }

    [Fact]
    public async Task Past_its_soft_expiry_a_hot_key_is_served_stale_while_one_caller_refreshes_it()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var entry = Entry with { SoftTimeToLive = TimeSpan.FromMilliseconds(200), EarlyRefreshFraction = 0 }; // only the stale path
        var key = NewKey();
        var loads = 0;
        async Task<OriginValue> Origin(CancellationToken ct)
        {
            var version = Interlocked.Increment(ref loads);
            await Task.Delay(OriginLatency, ct);
            return new OriginValue(Encoding.UTF8.GetBytes($"v{version}"), version);
        }

        var first = await cache.GetOrLoadAsync(key, Origin, entry, TestContext.Current.CancellationToken);
        var softExpiry = DateTimeOffset.UtcNow + entry.SoftTimeToLive.Value;
        await WaitUntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow > softExpiry), "soft expiry never passed");

        var reads = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => cache.GetOrLoadAsync(key, Origin, entry)));
        await WaitUntilAsync(async () => (await cache.GetOrLoadAsync(key, Origin, entry)).Version == 2, "the background refresh never landed");

        Assert.Equal(CacheOutcome.Miss, first.Outcome);
        Assert.All(reads, r => Assert.Equal((CacheOutcome.Stale, 1L), (r.Outcome, r.Version)));
        Assert.Equal(2, loads);
    }

    [Fact]
    public async Task Near_its_soft_expiry_a_hot_key_is_refreshed_early_and_never_served_stale()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        // Draws of 0 make the early refresh certain inside its window, so the test does not depend on chance.
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")) with { Random = new AlwaysZero() });
        var entry = Entry with { SoftTimeToLive = TimeSpan.FromSeconds(4), EarlyRefreshFraction = 0.5 }; // window: the last 2 s
        var key = NewKey();
        var loads = 0;
        Task<OriginValue> Origin(CancellationToken _)
        {
            var version = Interlocked.Increment(ref loads);
            return Task.FromResult(new OriginValue(Encoding.UTF8.GetBytes($"v{version}"), version));
        }

        await cache.GetOrLoadAsync(key, Origin, entry, TestContext.Current.CancellationToken);
        var windowOpens = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2.5);
        await WaitUntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow > windowOpens), "the early-refresh window never opened");

        var inWindow = await cache.GetOrLoadAsync(key, Origin, entry, TestContext.Current.CancellationToken);
        await WaitUntilAsync(async () => (await cache.GetOrLoadAsync(key, Origin, entry, TestContext.Current.CancellationToken)).Version == 2,
            "the early refresh never landed");

        Assert.Equal((CacheOutcome.Hit, 1L), (inWindow.Outcome, inWindow.Version));
        Assert.Equal(0, cache.Counters.StaleReads);
        Assert.Equal(2, loads);
    }

    private sealed class AlwaysZero : Random
    {
        public override double NextDouble() => 0;
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, string failure) =>
        Eventually.UntilAsync(condition, TimeSpan.FromSeconds(10), failure, TimeSpan.FromMilliseconds(10), TestContext.Current.CancellationToken);
}
