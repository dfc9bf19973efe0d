using System.Threading.RateLimiting;

namespace ShopReference.Valkey.RateLimiting;

/// <summary>What a limiter instance has decided, for <see cref="RateLimiter.GetStatistics"/> and idle eviction.</summary>
internal sealed class LeaseCounters(int permitLimit, TimeProvider time)
{
    private long _successful;
    private long _failed;
    private long _lastRemaining = permitLimit;
    private long _lastUsed = time.GetTimestamp();

    public TimeSpan IdleDuration => time.GetElapsedTime(Interlocked.Read(ref _lastUsed));

    public RateLimiterStatistics Statistics() => new()
    {
        CurrentAvailablePermits = Interlocked.Read(ref _lastRemaining),
        CurrentQueuedCount = 0,
        TotalSuccessfulLeases = Interlocked.Read(ref _successful),
        TotalFailedLeases = Interlocked.Read(ref _failed),
    };

    public void Record(RateLimitDecision decision)
    {
        Interlocked.Exchange(ref _lastUsed, time.GetTimestamp());
        Interlocked.Exchange(ref _lastRemaining, decision.Remaining);
        Interlocked.Increment(ref decision.Allowed ? ref _successful : ref _failed);
    }
}
