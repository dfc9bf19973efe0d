using System.Threading.RateLimiting;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Tests.RateLimiting;

[Collection(ServersCollection.Name)]
public sealed class WindowLimiterTests(ServersFixture fixture)
{
    // A long window: no reset and (for token bucket and GCRA) less than one refilled permit during a test.
    private static readonly TimeSpan LongWindow = TimeSpan.FromHours(1);

    public static TheoryData<RateLimitAlgorithm> WindowAlgorithms =>
    [
        RateLimitAlgorithm.FixedWindow, RateLimitAlgorithm.SlidingWindowLog, RateLimitAlgorithm.SlidingWindowCounter,
        RateLimitAlgorithm.TokenBucket, RateLimitAlgorithm.Gcra,
    ];

    [Theory]
    [MemberData(nameof(WindowAlgorithms))]
    public async Task Two_instances_on_separate_connections_with_64_concurrent_clients_admit_exactly_the_limit(RateLimitAlgorithm algorithm)
    {
        await using var first = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var partition = LimiterHarness.NewPartition();
        var options = LimiterHarness.Options(100, LongWindow);
        RateLimiter[] limiters =
        [
            ValkeyRateLimiters.Create(algorithm, first.GetDatabase(), partition, options),
            ValkeyRateLimiters.Create(algorithm, second.GetDatabase(), partition, options),
        ];

        var admitted = await LimiterHarness.AdmittedAsync(limiters, clients: 64, attemptsPerClient: 5);

        // In a fresh window the sliding counter has no previous window to weigh, so it is exact too.
        Assert.Equal(100, admitted);
    }

    // Only the algorithms whose state is a time (GCRA's theoretical arrival time, the bucket's last refill) would be bent
    // by a process clock here: instances 12 minutes apart would each see the other's state as long past and admit again.
    // The window algorithms keep counts per window; at this window length a process-timed window would count the same,
    // so a case for them could not fail and is left out.
    [Theory]
    [InlineData(RateLimitAlgorithm.Gcra)]
    [InlineData(RateLimitAlgorithm.TokenBucket)]
    public async Task Instances_whose_process_clocks_differ_by_minutes_still_admit_exactly_the_limit(RateLimitAlgorithm algorithm)
    {
        await using var first = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var partition = LimiterHarness.NewPartition();
        RateLimiter[] limiters =
        [
            ValkeyRateLimiters.Create(algorithm, first.GetDatabase(), partition, LimiterHarness.Options(50, LongWindow, new SkewedTimeProvider(TimeSpan.FromMinutes(-5)))),
            ValkeyRateLimiters.Create(algorithm, second.GetDatabase(), partition, LimiterHarness.Options(50, LongWindow, new SkewedTimeProvider(TimeSpan.FromMinutes(7)))),
        ];

        var admitted = await LimiterHarness.AdmittedAsync(limiters, clients: 32, attemptsPerClient: 4);

        Assert.Equal(50, admitted);
    }

    [Theory]
    [MemberData(nameof(WindowAlgorithms))]
    public async Task A_client_that_waits_the_retry_after_it_was_given_is_admitted(RateLimitAlgorithm algorithm)
    {
        await using var connection = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var window = TimeSpan.FromMilliseconds(1500);
        var limiter = ValkeyRateLimiters.Create(algorithm, connection.GetDatabase(), LimiterHarness.NewPartition(), LimiterHarness.Options(3, window));

        RateLimitLease rejected;
        var attempts = 0;
        do
        {
            rejected = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
            Assert.True(++attempts <= 10, "the limiter never rejected");
        }
        while (rejected.IsAcquired);
        Assert.True(rejected.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter));
        // At most two windows: the sliding counter may have to wait for this window's count to be weighted down.
        Assert.InRange(retryAfter, TimeSpan.FromMilliseconds(1), 2 * window);

        // Waiting what the limiter said is the behaviour under test, not a wait for things to settle. A timer may
        // fire a tick early, so the wait is checked against the monotonic clock.
        var started = TimeProvider.System.GetTimestamp();
        while (TimeProvider.System.GetElapsedTime(started) is var waited && waited < retryAfter)
        {
            await Task.Delay(retryAfter - waited, TestContext.Current.CancellationToken);
        }

        using var retried = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
        Assert.True(retried.IsAcquired, $"rejected again after waiting the Retry-After of {retryAfter.TotalMilliseconds} ms");
    }

    [Theory]
    [MemberData(nameof(WindowAlgorithms))]
    public async Task Every_key_a_decision_writes_expires(RateLimitAlgorithm algorithm)
    {
        await using var connection = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var window = TimeSpan.FromSeconds(30);
        var limiter = (ValkeyRateLimiter)ValkeyRateLimiters.Create(algorithm, connection.GetDatabase(), LimiterHarness.NewPartition(), LimiterHarness.Options(10, window));

        using var lease = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
        var ttl = await connection.GetDatabase().KeyTimeToLiveAsync(limiter.Key);

        Assert.True(lease.IsAcquired);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromMilliseconds(1), window * 2 + TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Remaining_and_reset_are_reported_on_every_lease()
    {
        await using var connection = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var limiter = new GcraLimiter(connection.GetDatabase(), LimiterHarness.NewPartition(), LimiterHarness.Options(5, TimeSpan.FromSeconds(60)));

        using var lease = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);

        Assert.True(lease.TryGetMetadata(RateLimitMetadata.Remaining, out var remaining));
        Assert.Equal(4, remaining);
        Assert.True(lease.TryGetMetadata(RateLimitMetadata.ResetAfter, out var reset));
        Assert.InRange(reset, TimeSpan.FromSeconds(11), TimeSpan.FromSeconds(13)); // one emission interval: 60 s / 5
        Assert.Equal(1, limiter.GetStatistics()!.TotalSuccessfulLeases);
    }

    [Fact]
    public async Task A_flushed_script_cache_is_reloaded_transparently()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString + ",allowAdmin=true");
        var limiter = new FixedWindowLimiter(connection.GetDatabase(), LimiterHarness.NewPartition(), LimiterHarness.Options(5, TimeSpan.FromSeconds(60)));
        using (var first = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken))
        {
            Assert.True(first.IsAcquired);
        }

        await connection.GetServer(connection.GetEndPoints()[0]).ScriptFlushAsync();

        using var second = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
        Assert.True(second.IsAcquired);
        Assert.Equal(2, limiter.GetStatistics()!.TotalSuccessfulLeases);
    }

    // ASP.NET Core's rate-limiting middleware calls AttemptAcquire first on every request: a limiter that blocked a thread
    // on a round trip there would starve the pool under load. So the synchronous path asks nothing and spends nothing,
    // and the whole limit is still there for AcquireAsync, which the middleware calls next.
    [Theory]
    [MemberData(nameof(WindowAlgorithms))]
    [InlineData(RateLimitAlgorithm.Concurrency)]
    public async Task AttemptAcquire_answers_not_acquired_without_touching_Valkey_and_AcquireAsync_still_admits_the_whole_limit(RateLimitAlgorithm algorithm)
    {
        await using var connection = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var database = connection.GetDatabase();
        using var limiter = ValkeyRateLimiters.Create(algorithm, database, LimiterHarness.NewPartition(), LimiterHarness.Options(3, LongWindow));
        var key = limiter switch
        {
            ValkeyRateLimiter window => window.Key,
            ValkeyConcurrencyLimiter concurrency => concurrency.Key,
            _ => throw new InvalidOperationException(limiter.GetType().Name),
        };

        for (var i = 0; i < 10; i++)
        {
            using var refused = limiter.AttemptAcquire(1);
            Assert.False(refused.IsAcquired);
        }
        Assert.False(await database.KeyExistsAsync(key));

        var leases = new List<RateLimitLease>();
        for (var i = 0; i < 5; i++)
        {
            leases.Add(await limiter.AcquireAsync(1, TestContext.Current.CancellationToken));
        }
        Assert.Equal(3, leases.Count(lease => lease.IsAcquired));
        leases.ForEach(lease => lease.Dispose());
    }
}
