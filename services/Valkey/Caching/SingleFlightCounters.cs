namespace ShopReference.Valkey.Caching;

/// <summary>What one process's cache did, for its meter and stats endpoint. Thread-safe; counts only go up.</summary>
public sealed class SingleFlightCounters
{
    private long _hits, _misses, _coalesced, _stale, _originLoads, _lockWaits, _lockWaitTicks, _fillsRefused, _refreshFailures;

    public long Hits => Interlocked.Read(ref _hits);
    public long Misses => Interlocked.Read(ref _misses);
    public long CoalescedReads => Interlocked.Read(ref _coalesced);
    public long StaleReads => Interlocked.Read(ref _stale);
    public long OriginLoads => Interlocked.Read(ref _originLoads);
    public long LockWaits => Interlocked.Read(ref _lockWaits);
    public TimeSpan LockWaitTime => TimeSpan.FromTicks(Interlocked.Read(ref _lockWaitTicks));
    public long FillsRefused => Interlocked.Read(ref _fillsRefused);
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
