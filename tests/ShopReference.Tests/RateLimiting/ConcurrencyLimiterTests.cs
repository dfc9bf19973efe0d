using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.RateLimiting;

namespace ShopReference.Tests.RateLimiting;

[Collection(ServersCollection.Name)]
public sealed class ConcurrencyLimiterTests(ServersFixture fixture)
{
    [Fact]
    public async Task Sixty_four_concurrent_callers_on_two_instances_hold_at_most_the_limit_at_once()
    {
        await using var first = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var partition = LimiterHarness.NewPartition();
        var options = LimiterHarness.Options(5, TimeSpan.FromSeconds(30));
        ValkeyConcurrencyLimiter[] limiters = [new(first.GetDatabase(), partition, options), new(second.GetDatabase(), partition, options)];
        var allTried = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tried = 0;
        var held = 0;

        var callers = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            using var lease = await limiters[i % 2].AcquireAsync(1);
            if (lease.IsAcquired)
            {
                Interlocked.Increment(ref held);
            }
            if (Interlocked.Increment(ref tried) == 64)
            {
                allTried.SetResult();
            }
            await allTried.Task; // every holder keeps its permit until all 64 have tried
        })).ToArray();
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal(5, held);
        using var afterRelease = await WaitForAcquiredAsync(limiters[0], TimeSpan.FromSeconds(10));
        Assert.True(afterRelease.IsAcquired);
    }

    [Fact]
    public async Task A_held_lease_is_renewed_past_its_window_and_freed_on_dispose()
    {
        await using var connection = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        // A 1 s lease renewed every third of it: enough slack that a busy CI machine's timer delays do not lose it.
        var window = TimeSpan.FromSeconds(1);
        var limiter = new ValkeyConcurrencyLimiter(connection.GetDatabase(), LimiterHarness.NewPartition(), LimiterHarness.Options(1, window));

        var holder = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
        Assert.True(holder.IsAcquired);

        // For three lease windows, nobody else gets the permit: the holder keeps renewing it.
        var until = DateTime.UtcNow + 3 * window;
        var probes = 0;
        while (DateTime.UtcNow < until)
        {
            using var other = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
            Assert.False(other.IsAcquired, $"the permit was lost after {probes} probes");
            probes++;
        }

        holder.Dispose();
        using var next = await WaitForAcquiredAsync(limiter, TimeSpan.FromSeconds(5));
        Assert.True(next.IsAcquired);
    }

    [Fact]
    public async Task A_crashed_holder_frees_its_permit_within_one_window()
    {
        var crashed = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var survivor = await LimiterHarness.ConnectAsync(fixture.Valkey.ConnectionString);
        var partition = LimiterHarness.NewPartition();
        var options = LimiterHarness.Options(1, TimeSpan.FromMilliseconds(500));
        var doomed = await new ValkeyConcurrencyLimiter(crashed.GetDatabase(), partition, options).AcquireAsync(1, TestContext.Current.CancellationToken);
        Assert.True(doomed.IsAcquired);

        await crashed.DisposeAsync(); // the holder's process "dies": no renewal, no release

        using var taken = await WaitForAcquiredAsync(new ValkeyConcurrencyLimiter(survivor.GetDatabase(), partition, options), TimeSpan.FromSeconds(5));
        Assert.True(taken.IsAcquired);
    }

    private static async Task<System.Threading.RateLimiting.RateLimitLease> WaitForAcquiredAsync(ValkeyConcurrencyLimiter limiter, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        while (true)
        {
            var lease = await limiter.AcquireAsync(1, TestContext.Current.CancellationToken);
            if (lease.IsAcquired)
            {
                return lease;
            }
            lease.Dispose();
            Assert.False(deadline.IsCancellationRequested, "the permit never came back");
            await tick.WaitForNextTickAsync(TestContext.Current.CancellationToken);
        }
    }
}
