using System.Collections.Concurrent;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// Cache-aside with thundering-herd protection across processes. When an entry is missing, exactly one caller in the
/// whole fleet loads the origin, however slow the origin and however starved a process:
/// <list type="number">
/// <item>in-process, concurrent callers for one key share one flight, so a process sends at most one lock attempt; the
/// flight belongs to none of them, so a caller that gives up does not cancel the load the others wait for;</item>
/// <item>across processes, one script takes the lock (<c>SET NX PX</c>) and a fencing token (with its expiry); the
/// holder renews the lease while its load runs (<see cref="FlightLeases"/>);</item>
/// <item>the others wait for the fill announced on pub/sub (one subscription per process), and while the lease is
/// alive they keep waiting; only when it lapsed without a fill (the holder died) does one of them take the lock;</item>
/// <item>the fill is one Lua step that refuses a stale fence, an older version and a deletion that happened after the
/// value was read (a tombstone, <see cref="DeleteAsync"/>), then publishes.</item>
/// </list>
/// Keys must carry a hash tag (<c>catalog:product:{42}</c>): the lock and fence keys append to it and share its slot.
/// It does not protect an origin from distinct keys missing together; that is what TTL jitter is for.
/// </summary>
public sealed class SingleFlightCache : IAsyncDisposable
{
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly IDatabase _database;
    private readonly SingleFlightOptions _options;
    private readonly FlightLeases _leases;
    private readonly ValkeyScript _fill = ValkeyScript.Load<SingleFlightCache>("fill");
    private readonly ValkeyScript _evict = ValkeyScript.Load<SingleFlightCache>("evict");
    private readonly Action<RedisChannel, RedisValue> _onFilled;
    private readonly ConcurrentDictionary<string, Lazy<Task<CacheRead>>> _flights = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _refreshing = new(StringComparer.Ordinal);
    private readonly object _subscribeGate = new();
    private Task? _subscription;

    /// <summary>A cache over <paramref name="multiplexer"/> whose entries and locks are announced on <see cref="SingleFlightOptions.Channel"/>.</summary>
    public SingleFlightCache(IConnectionMultiplexer multiplexer, SingleFlightOptions options)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.LockLease, TimeSpan.FromMilliseconds(100));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.RecheckInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.MaxLoadTime, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.TombstoneTimeToLive, options.MaxLoadTime);
        _multiplexer = multiplexer;
        _database = multiplexer.GetDatabase();
        _options = options;
        _leases = new FlightLeases(_database, options);
        _onFilled = (_, message) =>
        {
            if (Announcement.TryParse(message, out var filled) && _waiters.TryRemove(filled.Key, out var waiter))
            {
                waiter.TrySetResult();
            }
        };
    }

    /// <summary>What this process's reads did: hits, misses, coalesced waits, origin loads.</summary>
    public SingleFlightCounters Counters { get; } = new();

    /// <summary>The channel every change of an entry is announced on (waiters and <see cref="NearCache"/> listen to it).</summary>
    public string Channel => _options.Channel;

    /// <summary>Reads <paramref name="key"/>, loading it through <paramref name="load"/> exactly once fleet-wide when missing.</summary>
    public async Task<CacheRead> GetOrLoadAsync(string key, Func<CancellationToken, Task<OriginValue>> load, CacheEntryOptions entry, CancellationToken cancellationToken = default)
    {
        if (await ReadAsync(key).ConfigureAwait(false) is { } cached)
        {
            if (cached.SoftExpired)
            {
                Counters.Stale();
                RefreshInBackground(key, load, entry);
                return cached.As(CacheOutcome.Stale);
            }
            if (ShouldRefreshEarly(cached.SoftExpiryMs, entry))
            {
                RefreshInBackground(key, load, entry);
            }
            Counters.Hit();
            return cached.As(CacheOutcome.Hit);
        }

        // The flight runs on its own: this caller's cancellation ends its wait, never the load others wait for.
        var mine = new Lazy<Task<CacheRead>>(() => Task.Run(() => FlyAsync(key, load, entry)));
        var flight = _flights.GetOrAdd(key, mine);
        if (ReferenceEquals(flight, mine))
        {
            _ = flight.Value.ContinueWith(_ => _flights.TryRemove(new KeyValuePair<string, Lazy<Task<CacheRead>>>(key, mine)),
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        var result = await flight.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (!ReferenceEquals(flight, mine))
        {
            Counters.Coalesced();
            return result with { Outcome = CacheOutcome.Coalesced };
        }
        return result;
    }

    /// <summary>Write-through: stores a value unless a newer version, or a deletion, is cached. Returns false when refused.</summary>
    /// <param name="key">The entry's key.</param>
    /// <param name="value">The value the origin now holds, with its version.</param>
    /// <param name="entry">The entry's lifetimes.</param>
    /// <param name="inserted">The row was (re)created at the origin: it may replace the tombstone of an earlier deletion.</param>
    public async Task<bool> SetAsync(string key, OriginValue value, CacheEntryOptions entry, bool inserted = false) =>
        await FillAsync(key, value, entry, fence: "", inserted ? "insert" : "load").ConfigureAwait(false) == 1;

    /// <summary>
    /// The origin deleted the item: a tombstone answers "not found" and refuses, for
    /// <see cref="SingleFlightOptions.TombstoneTimeToLive"/>, any fill of a load that read the item before the deletion.
    /// </summary>
    public Task DeleteAsync(string key) => FillAsync(key, OriginValue.NotFound, new CacheEntryOptions
    {
        TimeToLive = _options.TombstoneTimeToLive,
        NegativeTimeToLive = _options.TombstoneTimeToLive,
        Jitter = 0,
    }, fence: "", "delete");

    /// <summary>
    /// Evicts an entry (it is loaded again on the next read) and announces it; unlike <see cref="DeleteAsync"/> it says
    /// nothing about the origin.
    /// </summary>
    public async Task<bool> RemoveAsync(string key) =>
        (long)await _evict.EvaluateAsync(_database, [key], [_options.Channel, key]).ConfigureAwait(false) == 1;

    /// <summary>Unsubscribes from the channel; waiters still pending fall back to their recheck.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_subscription is { IsCompletedSuccessfully: true })
        {
            try
            {
                await _multiplexer.GetSubscriber().UnsubscribeAsync(RedisChannel.Literal(_options.Channel), _onFilled).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or RedisException)
            {
                // The host is shutting down and the connection (or its tracing) went first: the subscription ends with it.
            }
        }
    }

    private async Task<CacheRead> FlyAsync(string key, Func<CancellationToken, Task<OriginValue>> load, CacheEntryOptions entry)
    {
        await SubscribeAsync().ConfigureAwait(false);
        var started = TimeProvider.System.GetTimestamp();
        var waited = false;
        while (true)
        {
            if (await _leases.TryAcquireAsync(key).ConfigureAwait(false) is { } lease)
            {
                if (waited)
                {
                    Counters.LockWait(TimeProvider.System.GetElapsedTime(started));
                }
                // A fill may have landed between our miss and the lock: a waiter that takes over after it must not load again.
                if (await ReadAsync(key).ConfigureAwait(false) is { } landed)
                {
                    await lease.DisposeAsync().ConfigureAwait(false);
                    Counters.Coalesced();
                    return landed.As(CacheOutcome.Coalesced);
                }
                await using (lease.ConfigureAwait(false))
                {
                    var loaded = await LoadOriginAsync(load).ConfigureAwait(false);
                    await FillAsync(key, loaded, entry, lease.Fence, "load").ConfigureAwait(false);
                    Counters.Miss();
                    return new CacheRead(loaded.Payload, loaded.Version, CacheOutcome.Miss);
                }
            }

            // Another process holds the lock. Register before re-reading, so a fill that lands in between is not missed;
            // then wait for the announcement, looking at the lock now and then in case the announcement was lost.
            waited = true;
            var filled = _waiters.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            var cached = await ReadAsync(key).ConfigureAwait(false);
            if (cached is null)
            {
                await filled.Task.WaitAsync(_options.RecheckInterval).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                cached = await ReadAsync(key).ConfigureAwait(false);
            }
            _waiters.TryRemove(new KeyValuePair<string, TaskCompletionSource>(key, filled));
            if (cached is { } value)
            {
                Counters.LockWait(TimeProvider.System.GetElapsedTime(started));
                Counters.Coalesced();
                return value.As(CacheOutcome.Coalesced);
            }
            // No value yet: while the holder's lease is alive (renewed by a live holder) keep waiting; once it lapsed
            // without a fill, the next round tries to take the lock, and exactly one waiter in the fleet gets it.
            if (await _leases.IsHeldAsync(key).ConfigureAwait(false))
            {
                continue;
            }
        }
    }

    // One subscription per process, fanned out to the waiters by key. A failed attempt (Valkey down at start) is
    // retried by the next flight; once subscribed, StackExchange.Redis re-subscribes by itself after a reconnect.
    private Task SubscribeAsync()
    {
        lock (_subscribeGate)
        {
            if (_subscription is null || _subscription.IsFaulted || _subscription.IsCanceled)
            {
                _subscription = _multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal(_options.Channel), _onFilled);
            }
            return _subscription;
        }
    }

    private bool ShouldRefreshEarly(long softExpiryMs, CacheEntryOptions entry)
    {
        if (softExpiryMs == 0 || entry.SoftTimeToLive is not { } softTtl || entry.EarlyRefreshFraction <= 0)
        {
            return false;
        }
        var window = softTtl.TotalMilliseconds * entry.EarlyRefreshFraction;
        var remaining = softExpiryMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return remaining < window && _options.Random.NextDouble() < 1 - remaining / window;
    }

    private void RefreshInBackground(string key, Func<CancellationToken, Task<OriginValue>> load, CacheEntryOptions entry)
    {
        if (!_refreshing.TryAdd(key, 0))
        {
            return; // this process already refreshes it
        }
        _ = Task.Run(async () =>
        {
            try
            {
                // Whoever holds the lock is refreshing it already; the stale value keeps being served meanwhile.
                if (await _leases.TryAcquireAsync(key).ConfigureAwait(false) is { } lease)
                {
                    await using (lease.ConfigureAwait(false))
                    {
                        await FillAsync(key, await LoadOriginAsync(load).ConfigureAwait(false), entry, lease.Fence, "load").ConfigureAwait(false);
                    }
                }
            }
            catch (Exception)
            {
                Counters.RefreshFailed(); // the stale value keeps being served; the next read tries again
            }
            finally
            {
                _refreshing.TryRemove(key, out _);
            }
        });
    }

    private async Task<OriginValue> LoadOriginAsync(Func<CancellationToken, Task<OriginValue>> load)
    {
        Counters.OriginLoad();
        using var timeout = new CancellationTokenSource(_options.MaxLoadTime);
        return await load(timeout.Token).ConfigureAwait(false);
    }

    private async Task<long> FillAsync(string key, OriginValue value, CacheEntryOptions entry, string fence, string mode)
    {
        var negative = value.Payload is null;
        var ttl = negative ? entry.NegativeTimeToLive : entry.TimeToLive * (1 + Random.Shared.NextDouble() * entry.Jitter);
        var soft = !negative && entry.SoftTimeToLive is { } softTtl ? DateTimeOffset.UtcNow.Add(softTtl).ToUnixTimeMilliseconds() : 0;
        var result = await _fill.EvaluateAsync(_database, [key, FlightLeases.FenceKey(key)],
        [
            CacheEnvelope.Encode(value, soft, deleted: mode == "delete"), value.Version, (long)ttl.TotalMilliseconds, fence, _options.Channel, key, mode,
        ]).ConfigureAwait(false);
        var code = (long)result;
        if (code != 1)
        {
            Counters.FillRefused();
        }
        return code;
    }

    private async Task<CachedEntry?> ReadAsync(string key)
    {
        var stored = await _database.StringGetAsync(key).ConfigureAwait(false);
        if (stored.IsNull || !CacheEnvelope.TryDecode((ReadOnlyMemory<byte>)stored, out var entry))
        {
            return null; // absent, or not written by this cache: treated as a miss and overwritten by the fill
        }
        return new CachedEntry(entry.Negative ? null : entry.Payload.ToArray(), entry.Version, entry.SoftExpiryMs,
            entry.SoftExpiryMs != 0 && DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() >= entry.SoftExpiryMs);
    }

    private readonly record struct CachedEntry(byte[]? Payload, long Version, long SoftExpiryMs, bool SoftExpired)
    {
        public CacheRead As(CacheOutcome outcome) => new(Payload, Version, outcome);
    }
}
