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
    private static SingleFlightOptions Options(string channel, TimeSpan? lease = null) => new()
    {
        Channel = channel,
        LockLease = lease ?? TimeSpan.FromSeconds(10),
        RecheckInterval = TimeSpan.FromMilliseconds(200),
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
    public async Task A_lock_holder_whose_lease_lapsed_cannot_overwrite_the_value_of_its_successor()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var channel = "test:filled:" + Guid.NewGuid().ToString("N");
        await using var frozenHolder = new SingleFlightCache(first, Options(channel));
        await using var successor = new SingleFlightCache(second, Options(channel));
        var key = NewKey();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var stalled = frozenHolder.GetOrLoadAsync(key, async _ =>
        {
            await release.Task;
            return new OriginValue(Encoding.UTF8.GetBytes("from the lapsed holder"), 1);
        }, Entry, TestContext.Current.CancellationToken);
        var db = first.GetDatabase();
        await WaitUntilAsync(async () => await db.KeyExistsAsync(key + ":lock"), "the holder never took the lock");
        // The holder's whole process froze past its lease (a long pause stops the renewals too): the lease lapses.
        await db.KeyDeleteAsync(key + ":lock");

        var next = await successor.GetOrLoadAsync(key, _ => Task.FromResult(new OriginValue(Encoding.UTF8.GetBytes("from the successor"), 1)), Entry, TestContext.Current.CancellationToken);
        release.SetResult();
        await stalled;

        Assert.Equal(CacheOutcome.Miss, next.Outcome);
        Assert.True(CacheEnvelope.TryDecode((ReadOnlyMemory<byte>)await db.StringGetAsync(key), out var stored));
        Assert.Equal("from the successor", Encoding.UTF8.GetString(stored.Payload.Span));
        Assert.Equal(1, frozenHolder.Counters.FillsRefused);
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
    public async Task A_waiter_whose_holder_died_waits_out_its_lease_then_takes_over_and_loads_once()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var key = NewKey();
        // A holder in another process took the lock and died without filling or releasing: its lease runs out.
        await connection.GetDatabase().StringSetAsync(key + ":lock", "dead-holder", TimeSpan.FromMilliseconds(800));
        var loadedWhileLeaseAlive = false;

        var read = await cache.GetOrLoadAsync(key, async _ =>
        {
            loadedWhileLeaseAlive = await connection.GetDatabase().StringGetAsync(key + ":lock") == "dead-holder";
            return new OriginValue(Encoding.UTF8.GetBytes("loaded"), 1);
        }, Entry, TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        Assert.Equal(CacheOutcome.Miss, read.Outcome);
        Assert.False(loadedWhileLeaseAlive);
        Assert.Equal(1, cache.Counters.LockWaits);
        Assert.Equal(1, cache.Counters.OriginLoads);
    }

    [Fact]
    public async Task A_holder_slower_than_its_lease_keeps_the_lock_by_renewing_it_and_the_origin_is_loaded_once()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var channel = "test:filled:" + Guid.NewGuid().ToString("N");
        // Renewed every quarter lease: a lease of 1.5 s leaves the renewal 1.1 s of slack on a starved machine (with
        // 0.6 s it once lapsed in CI while two test suites and a build shared two cores). Production leases are 10 s.
        var lease = TimeSpan.FromMilliseconds(1_500);
        await using var processA = new SingleFlightCache(first, Options(channel, lease));
        await using var processB = new SingleFlightCache(second, Options(channel, lease));
        var key = NewKey();
        var loads = 0;
        async Task<OriginValue> Origin(CancellationToken ct)
        {
            Interlocked.Increment(ref loads);
            await Task.Delay(lease * 3, ct); // three leases long
            return new OriginValue(Encoding.UTF8.GetBytes("slow"), 1);
        }

        var reads = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => (i % 2 == 0 ? processA : processB).GetOrLoadAsync(key, Origin, Entry)))
            .WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal(1, loads);
        Assert.All(reads, r => Assert.Equal("slow", Encoding.UTF8.GetString(r.Payload!)));
    }

    [Fact]
    public async Task One_origin_load_per_expiry_with_a_five_second_origin_while_busy_threads_saturate_the_cpu()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var channel = "test:filled:" + Guid.NewGuid().ToString("N");
        // The catalog's defaults but a lease (4 s) shorter than the load (5 s): the count holds only if the holder's renewals
        // (every second) get through on the starved CPU; without them the lease lapses and a waiter loads again.
        var options = new SingleFlightOptions { Channel = channel, LockLease = TimeSpan.FromSeconds(4) };
        await using var processA = new SingleFlightCache(first, options);
        await using var processB = new SingleFlightCache(second, options);
        var key = NewKey();
        var loads = 0;
        async Task<OriginValue> Origin(CancellationToken ct)
        {
            Interlocked.Increment(ref loads);
            await Task.Delay(TimeSpan.FromSeconds(5), ct);
            return new OriginValue(Encoding.UTF8.GetBytes("product"), 3);
        }

        // Four spinning threads per core beside the burst, for as long as it lasts: every waiter and the holder's lease
        // renewals run late, as on a busy CI machine.
        using var busy = new CancellationTokenSource();
        var spinners = Enumerable.Range(0, Environment.ProcessorCount * 4).Select(_ => new Thread(() =>
        {
            while (!busy.IsCancellationRequested)
            {
                Thread.SpinWait(1_000);
            }
        }) { IsBackground = true }).ToList();
        spinners.ForEach(t => t.Start());
        CacheRead[] reads;
        try
        {
            reads = await Task.WhenAll(Enumerable.Range(0, 400).Select(i => Task.Run(() => (i % 2 == 0 ? processA : processB).GetOrLoadAsync(key, Origin, Entry))))
                .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        }
        finally
        {
            await busy.CancelAsync();
            spinners.ForEach(t => t.Join());
        }

        Assert.Equal(1, loads);
        Assert.All(reads, r => Assert.Equal((3L, "product"), (r.Version, Encoding.UTF8.GetString(r.Payload!))));
    }

    [Fact]
    public async Task A_delete_while_a_load_runs_is_not_undone_by_that_load()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var key = NewKey();
        var readRow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var loading = cache.GetOrLoadAsync(key, async _ =>
        {
            readRow.SetResult(); // the load has read the row ...
            await release.Task;  // ... and is slow to write it back
            return new OriginValue(Encoding.UTF8.GetBytes("deleted meanwhile"), 4);
        }, Entry, TestContext.Current.CancellationToken);
        await readRow.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        await cache.DeleteAsync(key); // the origin deletes the row (change-data capture's tombstone)
        release.SetResult();
        await loading;

        var after = await cache.GetOrLoadAsync(key, _ => throw new InvalidOperationException("the tombstone answers"), Entry, TestContext.Current.CancellationToken);
        Assert.False(after.Found);
        Assert.Equal(1, cache.Counters.FillsRefused);
        Assert.True(await cache.SetAsync(key, new OriginValue(Encoding.UTF8.GetBytes("inserted again"), 1), Entry, inserted: true));
    }

    [Fact]
    public async Task The_caller_that_started_a_flight_giving_up_does_not_cancel_the_load_others_wait_for()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var key = NewKey();
        var loads = 0;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<OriginValue> Origin(CancellationToken ct)
        {
            Interlocked.Increment(ref loads);
            started.TrySetResult();
            await Task.Delay(OriginLatency, ct);
            return new OriginValue(Encoding.UTF8.GetBytes("shared"), 1);
        }
        using var impatient = new CancellationTokenSource();

        var owner = cache.GetOrLoadAsync(key, Origin, Entry, impatient.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        var others = Enumerable.Range(0, 20).Select(_ => cache.GetOrLoadAsync(key, Origin, Entry, TestContext.Current.CancellationToken)).ToArray();
        await impatient.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => owner);
        var reads = await Task.WhenAll(others).WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.All(reads, r => Assert.Equal("shared", Encoding.UTF8.GetString(r.Payload!)));
        Assert.Equal(1, loads);
    }

    [Fact]
    public async Task The_fencing_counter_gets_its_expiry_in_the_step_that_creates_it()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var cache = new SingleFlightCache(connection, Options("test:filled:" + Guid.NewGuid().ToString("N")));
        var key = NewKey();
        TimeSpan? fenceTtl = null;

        await cache.GetOrLoadAsync(key, async _ =>
        {
            fenceTtl = await connection.GetDatabase().KeyTimeToLiveAsync(key + ":fence"); // observed from inside the load
            return new OriginValue(Encoding.UTF8.GetBytes("x"), 1);
        }, Entry, TestContext.Current.CancellationToken);

        Assert.NotNull(fenceTtl);
        Assert.InRange(fenceTtl.Value, TimeSpan.FromHours(23), TimeSpan.FromDays(1));
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
