using System.Threading.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Valkey.RateLimiting;

/// <summary>One limiter decision as the script computed it from the server's clock.</summary>
public readonly record struct RateLimitDecision(bool Allowed, long Remaining, TimeSpan ResetAfter, TimeSpan RetryAfter)
{
    // The scripts truncate the server's TIME to whole milliseconds, so a computed wait can be short by up to 1 ms:
    // a rejection's RetryAfter is rounded up by that much, so that waiting it is always enough.
    private static readonly TimeSpan ClockResolution = TimeSpan.FromMilliseconds(1);

    internal static RateLimitDecision Parse(RedisResult result)
    {
        var values = (RedisResult[])result!;
        var allowed = (long)values[0] == 1;
        return new RateLimitDecision(
            allowed,
            Math.Max(0, (long)values[1]),
            TimeSpan.FromMilliseconds(Math.Max(0, (long)values[2])),
            allowed ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Max(0, (long)values[3])) + ClockResolution);
    }
}

/// <summary>Lease metadata beyond <see cref="MetadataName.RetryAfter"/>, for the IETF RateLimit header fields.</summary>
public static class RateLimitMetadata
{
    /// <summary>Permits left in the current window after this decision.</summary>
    public static MetadataName<long> Remaining { get; } = MetadataName.Create<long>("RATELIMIT_REMAINING");

    /// <summary>Time until the quota regains permits (the header's <c>t</c>).</summary>
    public static MetadataName<TimeSpan> ResetAfter { get; } = MetadataName.Create<TimeSpan>("RATELIMIT_RESET_AFTER");
}

/// <summary>The lease of a window-based decision: nothing to release, only metadata to report.</summary>
internal class DecisionLease(RateLimitDecision decision) : RateLimitLease
{
    private static readonly string[] NamesWhenAcquired = [RateLimitMetadata.Remaining.Name, RateLimitMetadata.ResetAfter.Name];
    private static readonly string[] NamesWhenRejected = [.. NamesWhenAcquired, MetadataName.RetryAfter.Name];

    public RateLimitDecision Decision { get; } = decision;
    public override bool IsAcquired => Decision.Allowed;
    public override IEnumerable<string> MetadataNames => IsAcquired ? NamesWhenAcquired : NamesWhenRejected;

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        metadata = metadataName switch
        {
            _ when metadataName == RateLimitMetadata.Remaining.Name => Decision.Remaining,
            _ when metadataName == RateLimitMetadata.ResetAfter.Name => Decision.ResetAfter,
            _ when metadataName == MetadataName.RetryAfter.Name && !IsAcquired => Decision.RetryAfter,
            _ => null,
        };
        return metadata is not null;
    }
}

/// <summary>
/// What the synchronous <c>AttemptAcquire</c> of a Valkey limiter answers: not acquired, no metadata, no round trip.
/// A decision needs a round trip, and a thread blocked on one per request starves the thread pool under load; ASP.NET
/// Core's rate-limiting middleware calls <c>AttemptAcquire</c> first and, refused, asks <c>AcquireAsync</c>, which decides.
/// </summary>
internal sealed class DecidedOnlyAsynchronouslyLease : RateLimitLease
{
    public static DecidedOnlyAsynchronouslyLease Instance { get; } = new();
    public override bool IsAcquired => false;
    public override IEnumerable<string> MetadataNames => [];
    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        metadata = null;
        return false;
    }
}
