using System.Threading.RateLimiting;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Tests.RateLimiting;

/// <summary>Drives limiters the way a fleet of gateways would: many clients in parallel, counting what was admitted.</summary>
internal static class LimiterHarness
{
    public static string NewPartition() => "test-" + Guid.NewGuid().ToString("N");

    public static ValkeyRateLimiterOptions Options(int limit, TimeSpan window, TimeProvider? time = null) =>
        new() { KeyPrefix = "ratelimit", PermitLimit = limit, Window = window, TimeProvider = time ?? TimeProvider.System };

    /// <summary>
    /// <paramref name="clients"/> concurrent clients, spread round-robin over <paramref name="limiters"/>, each trying
    /// <paramref name="attemptsPerClient"/> times. Returns how many were admitted.
    /// </summary>
    public static async Task<int> AdmittedAsync(IReadOnlyList<RateLimiter> limiters, int clients, int attemptsPerClient)
    {
        var admitted = 0;
        using var start = new ManualResetEventSlim(false);
        var tasks = Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            start.Wait();
            var limiter = limiters[client % limiters.Count];
            for (var i = 0; i < attemptsPerClient; i++)
            {
                using var lease = await limiter.AcquireAsync(1);
                if (lease.IsAcquired)
                {
                    Interlocked.Increment(ref admitted);
                }
            }
        })).ToArray();
        start.Set();
        await Task.WhenAll(tasks);
        return admitted;
    }

    public static async Task<ConnectionMultiplexer> ConnectAsync(string connectionString) =>
        await ConnectionMultiplexer.ConnectAsync(connectionString + ",connectTimeout=2000,syncTimeout=2000,asyncTimeout=2000");
}

/// <summary>A process clock that is off by a fixed amount, as a misconfigured host's would be.</summary>
internal sealed class SkewedTimeProvider(TimeSpan skew) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + skew;
    public override long GetTimestamp() => base.GetTimestamp() + (long)(skew.TotalSeconds * TimestampFrequency);
}
