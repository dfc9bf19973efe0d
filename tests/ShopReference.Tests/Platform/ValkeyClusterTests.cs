using System.Diagnostics;
using ShopReference.Analytics.Counting;
using ShopReference.CartSession.Carts;
using ShopReference.Testing;
using ShopReference.Tests.Analytics;
using ShopReference.Valkey;
using ShopReference.Valkey.Caching;
using ShopReference.Contracts.Events;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

/// <summary>One cluster of three primaries with a replica each, formed from C# (no shell), for the tests below.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private TestValkeyCluster? _cluster;

    public TestValkeyCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster has not started.");

    public async ValueTask InitializeAsync() => _cluster = await TestValkeyCluster.StartAsync(shards: 3, replicasPerShard: 1);

    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}

/// <summary>The patterns on a Valkey cluster: every slot served, keys spread over every primary, a primary's crash survived.</summary>
public sealed class ValkeyClusterTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private static readonly CacheEntryOptions Entry = new() { TimeToLive = TimeSpan.FromMinutes(5) };
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Three_primaries_each_with_a_replica_serve_all_16384_slots()
    {
        await using var valkey = await fixture.Cluster.ConnectAsync();
        var servers = valkey.GetServers();

        Assert.Equal(3, servers.Count(s => !s.IsReplica));
        Assert.Equal(3, servers.Count(s => s.IsReplica));
        var primaries = servers[0].ClusterConfiguration!.Nodes.Where(n => !n.IsReplica).ToList();
        Assert.Equal(16_384, primaries.Sum(n => n.Slots.Sum(range => range.To - range.From + 1)));
        Assert.All(primaries, primary => Assert.Single(primary.Children)); // each with its replica
    }

    [Fact]
    public async Task The_cache_the_limiters_and_the_carts_spread_their_keys_over_every_primary_and_no_script_call_is_cross_slot()
    {
        await using var valkey = await fixture.Cluster.ConnectAsync();
        var run = Guid.NewGuid().ToString("N")[..8];
        await using var cache = new SingleFlightCache(valkey, new SingleFlightOptions { Channel = $"test:{run}:filled" });
        var carts = new CartStore(valkey, new CartLimits { MaxLines = 50, MaxQuantityPerLine = 99, IdleTimeout = TimeSpan.FromMinutes(5) });

        for (var id = 0; id < 120; id++)
        {
            // Every script of the cache: acquire, fill and release (a miss), fill (a write), evict, and a deletion's fill.
            var key = $"test:{run}:product:{{{id}}}";
            Assert.Equal(CacheOutcome.Miss, (await cache.GetOrLoadAsync(key, _ => Task.FromResult(new OriginValue([1], 1)), Entry, Ct)).Outcome);
            Assert.True(await cache.SetAsync(key, new OriginValue([2], 2), Entry));
            if (id % 3 == 0) await cache.RemoveAsync(key);
            if (id % 3 == 1) await cache.DeleteAsync(key);
        }
        foreach (var algorithm in Enum.GetValues<RateLimitAlgorithm>())
        {
            for (var client = 0; client < 30; client++)
            {
                var limiter = ValkeyRateLimiters.Create(algorithm, valkey.GetDatabase(), $"test-{run}-{algorithm}-{client}",
                    new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = 5, Window = TimeSpan.FromMinutes(1) });
                using var lease = await limiter.AcquireAsync(1, Ct);
                Assert.True(lease.IsAcquired, $"{algorithm} refused a first request");
            }
        }
        var sessions = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            var session = await carts.CreateSessionAsync();
            await carts.AddAsync(session, 42, 2);
            Assert.Equal(2, (await carts.GetAsync(session))![42]);
            sessions.Add(session);
        }

        var primaries = valkey.GetServers().Where(s => !s.IsReplica).ToList();
        foreach (var pattern in new[] { $"test:{run}:product:*", $"ratelimit:*test-{run}-*", "cart:session:*" })
        {
            foreach (var primary in primaries)
            {
                var found = false;
                await foreach (var _ in primary.KeysAsync(pattern: pattern, pageSize: 1000).WithCancellation(Ct))
                {
                    found = true;
                    break;
                }
                Assert.True(found, $"no key matching {pattern} on primary {primary.EndPoint}");
            }
        }
    }

    [Fact]
    public async Task Each_analytics_partition_lies_in_its_own_sixteenth_of_the_slots_so_equal_shards_share_them_equally()
    {
        await using var valkey = await fixture.Cluster.ConnectAsync();
        int Slot(int partition) => valkey.HashSlot(AnalyticsKeys.DirtyHours(partition));
        Assert.All(AnalyticsKeys.AllPartitions, p => Assert.Equal(p, Slot(p) * AnalyticsKeys.Partitions / 16_384));
        var perPrimary = valkey.GetServers()[0].ClusterConfiguration!.Nodes.Where(n => !n.IsReplica)
            .Select(n => AnalyticsKeys.AllPartitions.Count(p => n.Slots.Any(range => range.From <= Slot(p) && Slot(p) <= range.To)))
            .Order().ToArray();
        Assert.Equal([5, 5, 6], perPrimary);
    }

    [Fact]
    public async Task Analytics_spreads_its_partitions_over_every_primary_and_the_reads_merge_them_exactly()
    {
        await using var valkey = await fixture.Cluster.ConnectAsync();
        await AnalyticsKit.ResetAsync(valkey);
        var now = DateTimeOffset.UtcNow;
        // 3,000 views of 200 products (product p viewed p mod 29 + 1 times, and more), 150 orders of 3 lines, 1,000 visitors.
        var views = Enumerable.Range(0, 3_000).Select(i => new AnalyticsEvent($"v{i}", EventTypes.ProductViewed, now, $"visitor-{i % 1_000}", i % 200 + 1)).ToList();
        var orders = Enumerable.Range(0, 150).Select(i => new AnalyticsEvent($"order-{i}", EventTypes.OrderPlaced, now, $"visitor-{i}",
            Lines: [(i % 200 + 1, 1), ((i * 7) % 200 + 1, 2), ((i * 13) % 200 + 1, 3)])).ToList();
        await AnalyticsKit.AppendAsync(valkey, [.. views, .. orders]);

        var consumer = AnalyticsKit.Consumer(valkey, "cluster");
        await consumer.DrainAsync();

        Assert.Equal((3_150L, 0L), (consumer.Counters.Applied, consumer.Counters.Duplicates));
        var sold = orders.SelectMany(o => o.Lines!).GroupBy(l => l.ProductId).ToDictionary(g => g.Key, g => (long)g.Sum(l => l.Quantity));
        Assert.Equal(sold, await AnalyticsKit.BucketAsync(valkey, "sold", now.UtcDateTime));
        await using var cache = new SingleFlightCache(valkey, new SingleFlightOptions { Channel = $"test:{Guid.NewGuid():N}:filled" });
        var top = await new Leaderboards(valkey, cache).RecomputeAsync("sold", "24h", 20);
        Assert.Equal([.. sold.OrderByDescending(p => p.Value).ThenBy(p => p.Key).Take(20).Select(p => new LeaderboardEntry(p.Key, p.Value))], top);
        var reads = new AnalyticsReads(valkey);
        Assert.InRange(await reads.UniqueVisitorsAsync(DateOnly.FromDateTime(now.UtcDateTime), days: 2), 980, 1_020); // HyperLogLog: 0.81 % error
        Assert.Equal(3_000, (await reads.MinutesAsync("views", 5)).Sum(m => m.Value));

        var perPrimary = new List<string>();
        foreach (var primary in valkey.GetServers().Where(s => !s.IsReplica))
        {
            var keys = 0;
            await foreach (var _ in primary.KeysAsync(pattern: "analytics:*", pageSize: 1000).WithCancellation(Ct)) keys++;
            perPrimary.Add($"{primary.EndPoint}: {keys}");
            Assert.True(keys > 0, $"no analytics key on primary {primary.EndPoint}");
        }
        TestContext.Current.TestOutputHelper?.WriteLine("analytics keys per primary: " + string.Join(", ", perPrimary));
    }

    [Fact]
    public async Task A_primary_killed_under_load_is_replaced_by_its_replica_and_the_cache_and_the_limiter_answer_again_within_20_seconds()
    {
        // A cluster of its own: the shared one must keep all its primaries for the other tests, which may run after this.
        await using var cluster = await TestValkeyCluster.StartAsync(shards: 3, replicasPerShard: 1);
        await using var valkey = await cluster.ConnectAsync(",connectTimeout=2000,syncTimeout=2000,asyncTimeout=2000");
        var run = Guid.NewGuid().ToString("N")[..8];
        await using var cache = new SingleFlightCache(valkey, new SingleFlightOptions { Channel = $"test:{run}:filled" });
        var key = $"test:{run}:product:{{7}}";
        var origin = 0;
        Task<OriginValue> Load(CancellationToken _)
        {
            Interlocked.Increment(ref origin);
            return Task.FromResult(new OriginValue([7], 1));
        }
        await cache.GetOrLoadAsync(key, Load, Entry, Ct);
        var victim = valkey.GetServer(valkey.GetDatabase().IdentifyEndpoint(key)!);
        Assert.False(victim.IsReplica);
        var victimPort = ((System.Net.IPEndPoint)victim.EndPoint).Port;

        // Readers and a limiter on the victim's slot keep going while its primary dies, paced (about 100 requests a
        // second each) so that the suites running beside this test on two cores are not starved by it.
        using var stop = new CancellationTokenSource();
        long failures = 0, successes = 0, lastFailure = 0;
        // A partition whose key lives on the same primary, so both patterns lose their node at once.
        var partition = Enumerable.Range(0, 1000).Select(i => $"test-{run}-{i}")
            .First(p => valkey.GetDatabase().IdentifyEndpoint(KeySchema.TaggedKey("ratelimit", "tb", p))!.Equals(victim.EndPoint));
        var limiter = ValkeyRateLimiters.Create(RateLimitAlgorithm.TokenBucket, valkey.GetDatabase(), partition,
            new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = 1_000_000, Window = TimeSpan.FromMinutes(1) });
        var load = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var read = await cache.GetOrLoadAsync(key, Load, Entry, CancellationToken.None);
                    using var lease = await limiter.AcquireAsync(1);
                    if (read.Found && lease.IsAcquired) Interlocked.Increment(ref successes);
                    await Task.Delay(10, CancellationToken.None);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    Interlocked.Increment(ref failures);
                    Interlocked.Exchange(ref lastFailure, Stopwatch.GetTimestamp());
                    await Task.Delay(50, CancellationToken.None); // a client's back-off, not a wait for a condition
                }
            }
        })).ToArray();
        await Eventually.UntilAsync(() => Interlocked.Read(ref successes) > 100, TimeSpan.FromSeconds(30), "the load never got going", cancellationToken: Ct);

        var killed = Stopwatch.GetTimestamp();
        await cluster.KillAsync(victimPort);
        await Eventually.UntilAsync(async () => !(await cluster.PrimaryPortsAsync(Ct)).Contains(victimPort),
            TimeSpan.FromSeconds(30), "the replica was never promoted", cancellationToken: Ct);
        var successesAfterPromotion = Interlocked.Read(ref successes);
        await Eventually.UntilAsync(() => Interlocked.Read(ref successes) > successesAfterPromotion + 50,
            TimeSpan.FromSeconds(30), "the cache and the limiter never answered again after the promotion", cancellationToken: Ct);
        await stop.CancelAsync();
        await Task.WhenAll(load);

        var outage = Interlocked.Read(ref lastFailure) == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(killed, Interlocked.Read(ref lastFailure));
        TestContext.Current.TestOutputHelper?.WriteLine($"primary killed: requests failed for {outage.TotalSeconds:0.0} s ({failures} failures, {successes} successes)");
        Assert.True(outage < TimeSpan.FromSeconds(20), $"requests failed for {outage.TotalSeconds:0.0} s after the primary died ({failures} failures)");
        // The entry was replicated before the crash (it was read 100 times first), so the new primary still has it:
        // the origin was loaded once for the warm-up, and at most once more if the replica had not received the fill.
        Assert.InRange(origin, 1, 2);
    }
}
