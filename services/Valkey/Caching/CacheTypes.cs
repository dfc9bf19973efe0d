namespace ShopReference.Valkey.Caching;

/// <summary>How a read was served; the catalog reports it as the <c>X-Cache</c> response header.</summary>
public enum CacheOutcome
{
    /// <summary>Found in Valkey.</summary>
    Hit,

    /// <summary>Found in this process's near cache (<see cref="NearCache"/>): no round trip at all.</summary>
    HitLocal,

    /// <summary>Not cached: this caller loaded the origin and filled the cache.</summary>
    Miss,

    /// <summary>Not cached: another caller (in this process or another) loaded it while this one waited.</summary>
    Coalesced,

    /// <summary>Past its soft expiry: served at once while one caller refreshes it in the background.</summary>
    Stale,
}

/// <summary>What an origin load returns: the payload and its version, or <c>Payload = null</c> for "does not exist".</summary>
public readonly record struct OriginValue(byte[]? Payload, long Version)
{
    /// <summary>The origin has no such item: cached as a short-lived "not found" so misses do not reach the origin.</summary>
    public static OriginValue NotFound { get; } = new(null, 0);
}

/// <summary>A read's result: <see cref="Payload"/> is null when the origin says the item does not exist.</summary>
public readonly record struct CacheRead(byte[]? Payload, long Version, CacheOutcome Outcome)
{
    /// <summary>Whether the origin has the item.</summary>
    public bool Found => Payload is not null;
}

/// <summary>Lifetimes of one cache entry.</summary>
public sealed record CacheEntryOptions
{
    /// <summary>How long an entry lives in Valkey (before jitter).</summary>
    public required TimeSpan TimeToLive { get; init; }

    /// <summary>Spread of the TTL (0.1 = up to +10 %), so keys filled together do not expire together.</summary>
    public double Jitter { get; init; } = 0.1;

    /// <summary>How long "does not exist" is remembered, so unknown ids do not reach the origin each time.</summary>
    public TimeSpan NegativeTimeToLive { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Stale-while-revalidate: after this age a read is served at once and one caller refreshes the entry in the
    /// background, so a hot key never misses. Null turns it off. Must be shorter than <see cref="TimeToLive"/>.
    /// </summary>
    public TimeSpan? SoftTimeToLive { get; init; }

    /// <summary>
    /// Probabilistic early refresh: in this last fraction of the soft TTL, each hit starts the background refresh with
    /// a probability rising from 0 to 1, so hot keys are usually refreshed before they turn stale and keys filled
    /// together do not all refresh at the same moment. 0 turns it off.
    /// </summary>
    public double EarlyRefreshFraction { get; init; } = 0.1;
}

/// <summary>Tuning of the herd protection.</summary>
public sealed record SingleFlightOptions
{
    /// <summary>
    /// How long a loader's cross-process lock lives without renewal. The holder renews it four times per lease while its
    /// load runs, so only a holder that died (or was starved of CPU for most of a lease) loses it; waiters then take over.
    /// </summary>
    public TimeSpan LockLease { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a waiter looks at the lock when no fill was announced (a lost announcement, a dead holder).</summary>
    public TimeSpan RecheckInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest an origin load may take before it is abandoned (its callers see the timeout).</summary>
    public TimeSpan MaxLoadTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a deletion's tombstone refuses fills. Longer than <see cref="MaxLoadTime"/>, so no load that read the
    /// row before it was deleted can outlive the tombstone and bring the row back.
    /// </summary>
    public TimeSpan TombstoneTimeToLive { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The pub/sub channel fills are announced on (one subscription per process).</summary>
    public required string Channel { get; init; }

    /// <summary>The source of the early-refresh draws (a test can make them certain).</summary>
    public Random Random { get; init; } = Random.Shared;
}
