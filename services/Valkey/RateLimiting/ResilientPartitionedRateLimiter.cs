using System.Threading.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Valkey.RateLimiting;

/// <summary>What a limiter does when Valkey cannot decide.</summary>
public enum OutageBehavior
{
    /// <summary>Reject with an "unavailable" lease (the gateway answers 503 with Retry-After).</summary>
    FailClosed,

    /// <summary>Decide in-process with the fallback limiter (its limit divided by the number of instances).</summary>
    FailOpen,
}

/// <summary>
/// Puts an outage policy around a Valkey-backed limiter. When Valkey fails, the decision falls to the in-process
/// <c>fallback</c> (fail-open) or is refused as unavailable (fail-closed), and Valkey is not asked again until
/// <c>probeInterval</c> has passed, so an outage costs one failed round trip per interval, not one per request.
/// The first decision Valkey answers ends the outage. Both switches are raised as events for metrics.
/// </summary>
public sealed class ResilientPartitionedRateLimiter<TResource> : PartitionedRateLimiter<TResource>
{
    /// <summary>Present (true) on a lease refused because no limiter could decide.</summary>
    public static MetadataName<bool> Unavailable { get; } = MetadataName.Create<bool>("RATELIMIT_UNAVAILABLE");

    private readonly PartitionedRateLimiter<TResource> _primary;
    private readonly PartitionedRateLimiter<TResource>? _fallback;
    private readonly TimeSpan _probeInterval;
    private readonly TimeProvider _time;
    private long _outageUntil; // timestamp; 0 = healthy
    private int _degraded;

    /// <summary>Decides with <paramref name="primary"/>; while it cannot (Valkey unavailable) with <paramref name="fallback"/>, or refuses when that is null. Retries the primary every <paramref name="probeInterval"/>.</summary>
    public ResilientPartitionedRateLimiter(
        PartitionedRateLimiter<TResource> primary, PartitionedRateLimiter<TResource>? fallback, TimeSpan probeInterval, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(probeInterval, TimeSpan.Zero);
        _primary = primary;
        _fallback = fallback;
        _probeInterval = probeInterval;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>What happens while Valkey cannot decide: fall back (fail open) or refuse (fail closed).</summary>
    public OutageBehavior Behavior => _fallback is null ? OutageBehavior.FailClosed : OutageBehavior.FailOpen;
    /// <summary>Whether an outage is in progress.</summary>
    public bool IsDegraded => Volatile.Read(ref _degraded) == 1;

    /// <summary>Raised once when Valkey stops deciding, with the exception that showed it.</summary>
    public event Action<Exception>? OutageStarted;

    /// <summary>Raised once when Valkey decides again.</summary>
    public event Action? OutageEnded;

    /// <inheritdoc/>
    public override RateLimiterStatistics? GetStatistics(TResource resource) => _primary.GetStatistics(resource);

    /// <inheritdoc/>
    protected override RateLimitLease AttemptAcquireCore(TResource resource, int permitCount)
    {
        if (InOutageWindow())
        {
            return Fallback(resource, permitCount);
        }
        try
        {
            var lease = _primary.AttemptAcquire(resource, permitCount);
            if (lease is not DecidedOnlyAsynchronouslyLease)
            {
                Recovered(); // a Valkey limiter's synchronous answer asked nothing, so it proves no recovery
            }
            return lease;
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            Failed(ex);
            return Fallback(resource, permitCount);
        }
    }

    /// <inheritdoc/>
    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(TResource resource, int permitCount, CancellationToken cancellationToken)
    {
        if (InOutageWindow())
        {
            return Fallback(resource, permitCount);
        }
        try
        {
            var lease = await _primary.AcquireAsync(resource, permitCount, cancellationToken).ConfigureAwait(false);
            Recovered();
            return lease;
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            Failed(ex);
            return Fallback(resource, permitCount);
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _primary.Dispose();
            _fallback?.Dispose();
        }
    }

    /// <inheritdoc/>
    protected override async ValueTask DisposeAsyncCore()
    {
        await _primary.DisposeAsync().ConfigureAwait(false);
        if (_fallback is not null)
        {
            await _fallback.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static bool IsOutage(Exception ex) => ex is ObjectDisposedException || Resilience.ValkeyFailures.IsUnavailable(ex);

    private bool InOutageWindow()
    {
        var until = Interlocked.Read(ref _outageUntil);
        return until != 0 && _time.GetTimestamp() < until;
    }

    private void Failed(Exception ex)
    {
        Interlocked.Exchange(ref _outageUntil, _time.GetTimestamp() + (long)(_probeInterval.TotalSeconds * _time.TimestampFrequency));
        if (Interlocked.Exchange(ref _degraded, 1) == 0)
        {
            OutageStarted?.Invoke(ex);
        }
    }

    private void Recovered()
    {
        if (Volatile.Read(ref _degraded) == 1 && Interlocked.Exchange(ref _degraded, 0) == 1)
        {
            Interlocked.Exchange(ref _outageUntil, 0);
            OutageEnded?.Invoke();
        }
    }

    private RateLimitLease Fallback(TResource resource, int permitCount) =>
        _fallback?.AttemptAcquire(resource, permitCount) ?? new UnavailableLease(_probeInterval);

    private sealed class UnavailableLease(TimeSpan retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => false;
        public override IEnumerable<string> MetadataNames => [MetadataName.RetryAfter.Name, Unavailable.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = metadataName == MetadataName.RetryAfter.Name ? retryAfter
                : metadataName == Unavailable.Name ? true
                : null;
            return metadata is not null;
        }
    }
}
