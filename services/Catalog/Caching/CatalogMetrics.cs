using System.Diagnostics.Metrics;
using ShopReference.Valkey.Caching;

namespace ShopReference.Catalog.Caching;

/// <summary>
/// The <c>ShopReference.Catalog</c> meter: the cache's outcomes (hits, misses, coalesced, stale), origin loads, lock
/// waits and their duration, the near cache (local hits and misses, invalidations, flushes, size), degraded reads, and
/// the change-data-capture lag.
/// </summary>
public sealed class CatalogMetrics
{
    public const string MeterName = "ShopReference.Catalog";
    private readonly Counter<long> _degraded;
    private readonly Histogram<double> _cdcLag;
    private readonly Counter<long> _slotRecreations;
    private long _degradedCount;
    private long _retainedWal = -1;
    private long _cdcRetries;
    private double _lastCdcLagMs;
    private readonly NearCache _nearCache;

    public CatalogMetrics(IMeterFactory meterFactory, NearCache nearCache)
    {
        var meter = meterFactory.Create(MeterName);
        var counters = nearCache.Inner.Counters;
        var local = nearCache.Counters;
        meter.CreateObservableCounter("shopreference.catalog.cache.local.hits", () => local.LocalHits, "{read}", "Reads served from this process's near cache.");
        meter.CreateObservableCounter("shopreference.catalog.cache.local.misses", () => local.LocalMisses, "{read}", "Reads the near cache passed on to Valkey.");
        meter.CreateObservableCounter("shopreference.catalog.cache.local.invalidations", () => local.Invalidations, "{key}",
            "Near-cache copies dropped because a change was announced.");
        meter.CreateObservableCounter("shopreference.catalog.cache.local.flushes", () => local.Flushes, "{flush}",
            "Times the near cache was emptied: a connection lost or restored, a probe lost, a bulk reset.");
        meter.CreateObservableCounter("shopreference.catalog.cache.local.probes_lost", () => local.ProbesLost, "{probe}",
            "Times no probe came back in time on the invalidation channel (a silent stall), so the near cache stopped trusting it.");
        meter.CreateObservableGauge("shopreference.catalog.cache.local.entries", () => nearCache.Count, "{entry}", "Entries in this process's near cache.");
        meter.CreateObservableGauge("shopreference.catalog.cache.local.size", () => nearCache.Bytes, "By", "Bytes held by this process's near cache.");
        meter.CreateObservableCounter("shopreference.catalog.cache.hits", () => counters.Hits, "{read}", "Reads served from Valkey.");
        meter.CreateObservableCounter("shopreference.catalog.cache.misses", () => counters.Misses, "{read}", "Reads that loaded the origin themselves.");
        meter.CreateObservableCounter("shopreference.catalog.cache.coalesced", () => counters.CoalescedReads, "{read}", "Reads that waited for another caller's load.");
        meter.CreateObservableCounter("shopreference.catalog.cache.stale", () => counters.StaleReads, "{read}", "Reads served past soft expiry while refreshing.");
        meter.CreateObservableCounter("shopreference.catalog.origin.loads", () => counters.OriginLoads, "{load}", "Loads from PostgreSQL through the cache.");
        meter.CreateObservableCounter("shopreference.catalog.lock.waits", () => counters.LockWaits, "{wait}", "Times a reader waited for another instance's load.");
        var lockWait = meter.CreateHistogram<double>("shopreference.catalog.lock.wait.duration", "ms", "How long readers waited for another instance's load.");
        counters.LockWaited += waited => lockWait.Record(waited.TotalMilliseconds);
        _degraded = meter.CreateCounter<long>("shopreference.catalog.degraded.reads", "{read}", "Reads and writes that bypassed Valkey because it was unreachable.");
        _cdcLag = meter.CreateHistogram<double>("shopreference.catalog.cdc.lag", "ms", "Commit-to-cache delay of change-data capture.");
        meter.CreateObservableGauge("shopreference.catalog.cdc.retained_wal", () => Interlocked.Read(ref _retainedWal), "By",
            "WAL the server keeps for the change feed's slot (current position minus its confirmed position).");
        meter.CreateObservableCounter("shopreference.catalog.cdc.retries", () => Interlocked.Read(ref _cdcRetries), "{retry}",
            "Times the change feed stopped before confirming a change it could not apply (Valkey unavailable), to replay it.");
        _slotRecreations = meter.CreateCounter<long>("shopreference.catalog.cdc.slot_recreations", "{slot}",
            "Times the change feed's slot had to be created again (dropped, lost in a failover, invalidated); each resets the cache.");
        Counters = counters;
        Local = local;
        _nearCache = nearCache;
    }

    public SingleFlightCounters Counters { get; }
    public NearCacheCounters Local { get; }
    public int LocalEntries => _nearCache.Count;
    public long DegradedCount => Interlocked.Read(ref _degradedCount);
    public double LastCdcLagMilliseconds => Volatile.Read(ref _lastCdcLagMs);

    public void Degraded()
    {
        Interlocked.Increment(ref _degradedCount);
        _degraded.Add(1);
    }

    /// <summary>Bytes of WAL retained for the feed's slot, -1 when unknown (no slot yet).</summary>
    public long RetainedWalBytes => Interlocked.Read(ref _retainedWal);

    public void RetainedWal(long? bytes) => Interlocked.Exchange(ref _retainedWal, bytes ?? -1);

    public void SlotRecreated() => _slotRecreations.Add(1);

    /// <summary>Times the feed stopped without confirming (it replays from its last confirmed position).</summary>
    public long CdcRetries => Interlocked.Read(ref _cdcRetries);

    public void CdcRetried() => Interlocked.Increment(ref _cdcRetries);

    public void CdcApplied(TimeSpan lag)
    {
        Volatile.Write(ref _lastCdcLagMs, lag.TotalMilliseconds);
        _cdcLag.Record(lag.TotalMilliseconds);
    }
}
