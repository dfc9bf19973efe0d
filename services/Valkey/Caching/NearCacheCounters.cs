namespace ShopReference.Valkey.Caching;

/// <summary>What one process's near cache did, for its meter and stats endpoint. Thread-safe; counts only go up.</summary>
public sealed class NearCacheCounters
{
    private long _hits, _misses, _invalidations, _flushes, _probesLost;

    /// <summary>Reads served from process memory.</summary>
    public long LocalHits => Interlocked.Read(ref _hits);

    /// <summary>Reads that went on to Valkey (and perhaps the origin).</summary>
    public long LocalMisses => Interlocked.Read(ref _misses);

    /// <summary>Keys dropped because a change was announced (or written by this process).</summary>
    public long Invalidations => Interlocked.Read(ref _invalidations);

    /// <summary>Times the whole near cache was emptied: a connection lost or restored, a lost probe, a bulk reset.</summary>
    public long Flushes => Interlocked.Read(ref _flushes);

    /// <summary>Times no probe came back in time although the connection looked fine.</summary>
    public long ProbesLost => Interlocked.Read(ref _probesLost);

    internal void LocalHit() => Interlocked.Increment(ref _hits);
    internal void LocalMiss() => Interlocked.Increment(ref _misses);
    internal void Invalidation() => Interlocked.Increment(ref _invalidations);
    internal void Flush() => Interlocked.Increment(ref _flushes);
    internal void ProbeLost() => Interlocked.Increment(ref _probesLost);
}
