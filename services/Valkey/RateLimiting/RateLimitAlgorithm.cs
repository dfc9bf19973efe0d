using System.Threading.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Valkey.RateLimiting;

/// <summary>The algorithms this project implements; docs/ratelimit.md says when to pick which.</summary>
public enum RateLimitAlgorithm
{
    /// <summary>A counter per window: O(1) memory, up to twice the limit across a window boundary.</summary>
    FixedWindow,
    /// <summary>One entry per permit: exact over any window-long interval; memory grows with the limit.</summary>
    SlidingWindowLog,
    /// <summary>Two counters weighted by overlap: O(1) memory, a documented approximation of the sliding window.</summary>
    SlidingWindowCounter,
    /// <summary>Refills at limit/window; bursts up to the limit.</summary>
    TokenBucket,
    /// <summary>Generic cell rate algorithm: one timestamp per partition, evenly spaced permits with a burst of the limit.</summary>
    Gcra,
    /// <summary>At most the limit held at once; leases renew while held and expire when their holder dies.</summary>
    Concurrency,
}

/// <summary>Builds the limiter of a <see cref="RateLimitAlgorithm"/>.</summary>
public static class ValkeyRateLimiters
{
    /// <summary>A Valkey-backed limiter for one partition.</summary>
    public static RateLimiter Create(RateLimitAlgorithm algorithm, IDatabase database, string partition, ValkeyRateLimiterOptions options) => algorithm switch
    {
        RateLimitAlgorithm.FixedWindow => new FixedWindowLimiter(database, partition, options),
        RateLimitAlgorithm.SlidingWindowLog => new SlidingWindowLogLimiter(database, partition, options),
        RateLimitAlgorithm.SlidingWindowCounter => new SlidingWindowCounterLimiter(database, partition, options),
        RateLimitAlgorithm.TokenBucket => new TokenBucketLimiter(database, partition, options),
        RateLimitAlgorithm.Gcra => new GcraLimiter(database, partition, options),
        RateLimitAlgorithm.Concurrency => new ValkeyConcurrencyLimiter(database, partition, options),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, null),
    };

    /// <summary>
    /// The in-process stand-in used while Valkey is down (fail-open): the closest System.Threading.RateLimiting
    /// algorithm, with the limit divided by the number of instances so the fleet as a whole stays near the limit.
    /// </summary>
    public static RateLimiter CreateInProcessFallback(RateLimitAlgorithm algorithm, ValkeyRateLimiterOptions options, int instances)
    {
        var limit = Math.Max(1, options.PermitLimit / Math.Max(1, instances));
        return algorithm switch
        {
            RateLimitAlgorithm.FixedWindow => new FixedWindowRateLimiter(new() { PermitLimit = limit, Window = options.Window, QueueLimit = 0 }),
            RateLimitAlgorithm.SlidingWindowLog or RateLimitAlgorithm.SlidingWindowCounter => new SlidingWindowRateLimiter(new()
            {
                PermitLimit = limit, Window = options.Window, SegmentsPerWindow = 6, QueueLimit = 0,
            }),
            RateLimitAlgorithm.TokenBucket or RateLimitAlgorithm.Gcra => new TokenBucketRateLimiter(new()
            {
                TokenLimit = limit, TokensPerPeriod = Math.Max(1, limit / 10), ReplenishmentPeriod = options.Window / 10, QueueLimit = 0,
            }),
            RateLimitAlgorithm.Concurrency => new ConcurrencyLimiter(new() { PermitLimit = limit, QueueLimit = 0 }),
            _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, null),
        };
    }
}
