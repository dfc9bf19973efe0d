using System.Threading.RateLimiting;
using ShopReference.Testing;
using ShopReference.Valkey.RateLimiting;

namespace ShopReference.Tests.RateLimiting;

/// <summary>Each test runs its own Valkey, because each stops it.</summary>
public sealed class OutagePolicyTests
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task Fail_closed_refuses_as_unavailable_while_valkey_is_down_and_recovers_by_itself()
    {
        await using var valkey = await TestValkeyServer.StartAsync();
        await using var connection = await LimiterHarness.ConnectAsync(valkey.ConnectionString);
        await using var limiter = Resilient(connection.GetDatabase(), fallback: null, limit: 100);
        var outages = 0;
        limiter.OutageStarted += _ => Interlocked.Increment(ref outages);

        using (var healthy = await limiter.AcquireAsync("client", 1, TestContext.Current.CancellationToken))
        {
            Assert.True(healthy.IsAcquired);
        }

        await valkey.StopAsync();
        for (var i = 0; i < 20; i++)
        {
            using var refused = await limiter.AcquireAsync("client", 1, TestContext.Current.CancellationToken);
            Assert.False(refused.IsAcquired);
            Assert.True(refused.TryGetMetadata(ResilientPartitionedRateLimiter<string>.Unavailable, out var unavailable) && unavailable);
            Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) && retryAfter > TimeSpan.Zero);
        }
        Assert.Equal(1, outages);

        await valkey.RestartAsync();
        using var recovered = await WaitUntilAcquiredAsync(limiter);
        Assert.False(limiter.IsDegraded);
    }

    [Fact]
    public async Task Fail_open_decides_in_process_with_the_limit_divided_by_the_instances_then_switches_back()
    {
        await using var valkey = await TestValkeyServer.StartAsync();
        await using var connection = await LimiterHarness.ConnectAsync(valkey.ConnectionString);
        var options = LimiterHarness.Options(40, TimeSpan.FromHours(1));
        var fallback = PartitionedRateLimiter.Create<string, string>(client =>
            RateLimitPartition.Get(client, _ => ValkeyRateLimiters.CreateInProcessFallback(RateLimitAlgorithm.FixedWindow, options, instances: 4)));
        await using var limiter = Resilient(connection.GetDatabase(), fallback, limit: 40);
        var recoveries = 0;
        limiter.OutageEnded += () => Interlocked.Increment(ref recoveries);

        await valkey.StopAsync();
        var admittedDuringOutage = 0;
        for (var i = 0; i < 30; i++)
        {
            using var lease = await limiter.AcquireAsync("client", 1, TestContext.Current.CancellationToken);
            admittedDuringOutage += lease.IsAcquired ? 1 : 0;
        }
        Assert.True(limiter.IsDegraded);
        Assert.Equal(40 / 4, admittedDuringOutage);

        await valkey.RestartAsync(); // an empty server: the shared count starts again
        using var recovered = await WaitUntilAcquiredAsync(limiter);
        Assert.False(limiter.IsDegraded);
        Assert.Equal(1, recoveries);
    }

    private static ResilientPartitionedRateLimiter<string> Resilient(StackExchange.Redis.IDatabase database, PartitionedRateLimiter<string>? fallback, int limit)
    {
        var options = LimiterHarness.Options(limit, TimeSpan.FromHours(1));
        var partition = LimiterHarness.NewPartition();
        var primary = PartitionedRateLimiter.Create<string, string>(client =>
            RateLimitPartition.Get(client, c => new FixedWindowLimiter(database, $"{partition}-{c}", options)));
        return new ResilientPartitionedRateLimiter<string>(primary, fallback, ProbeInterval);
    }

    private static async Task<RateLimitLease> WaitUntilAcquiredAsync(ResilientPartitionedRateLimiter<string> limiter)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var tick = new PeriodicTimer(ProbeInterval / 2);
        while (true)
        {
            var lease = await limiter.AcquireAsync("client", 1, TestContext.Current.CancellationToken);
            if (lease.IsAcquired && !limiter.IsDegraded)
            {
                return lease;
            }
            lease.Dispose();
            Assert.False(deadline.IsCancellationRequested, "the limiter never switched back to Valkey");
            await tick.WaitForNextTickAsync(TestContext.Current.CancellationToken);
        }
    }
}
