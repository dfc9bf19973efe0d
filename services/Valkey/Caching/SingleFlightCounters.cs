namespace ShopReference.Valkey.Caching;

/// <summary>What one process's cache did, for its meter and stats endpoint. Thread-safe; counts only go up.</summary>
public sealed class SingleFlightCounters
{
    private long _hits, _misses, _coalesced, _stale, _originLoads, _lockWaits, _lockWaitTicks, _fillsRefused, _refreshFailures;

    /// <summary>Reads served from Valkey.</summary>
    public long Hits => Interlocked.Read(ref _hits);
    /// <summary>Reads that found no entry (or a stale one) in Valkey.</summary>
    public long Misses => Interlocked.Read(ref _misses);
    /// <summary>Misses that waited for another caller's load instead of loading.</summary>
    public long CoalescedReads => Interlocked.Read(ref _coalesced);
    /// <summary>Reads served a stale entry while one caller refreshed it.</summary>
    public long StaleReads => Interlocked.Read(ref _stale);
    /// <summary>Loads from the origin this process ran.</summary>
    public long OriginLoads => Interlocked.Read(ref _originLoads);
    /// <summary>Times a caller waited for another process's lock.</summary>
    public long LockWaits => Interlocked.Read(ref _lockWaits);
    /// <summary>Total time callers spent waiting for a lock.</summary>
    public TimeSpan LockWaitTime => TimeSpan.FromTicks(Interlocked.Read(ref _lockWaitTicks));
    /// <summary>Fills refused because a newer version or a tombstone was already stored.</summary>
    public long FillsRefused => Interlocked.Read(ref _fillsRefused);
    /// <summary>Early refreshes whose origin load failed (the stale entry stayed).</summary>
    public long RefreshFailures => Interlocked.Read(ref _refreshFailures);

    /// <summary>Raised after each lock wait with its duration (for a histogram).</summary>
    public event Action<TimeSpan>? LockWaited;

    internal void Hit() => Interlocked.Increment(ref _hits);
    internal void Miss() => Interlocked.Increment(ref _misses);
    internal void Coalesced() => Interlocked.Increment(ref _coalesced);
    internal void Stale() => Interlocked.Increment(ref _stale);
    internal void OriginLoad() => Interlocked.Increment(ref _originLoads);
    internal void FillRefused() => Interlocked.Increment(ref _fillsRefused);
    internal void RefreshFailed() => Interlocked.Increment(ref _refreshFailures);

    internal void LockWait(TimeSpan waited)
    {
        Interlocked.Increment(ref _lockWaits);
        Interlocked.Add(ref _lockWaitTicks, waited.Ticks);
        LockWaited?.Invoke(waited);
    }
}
