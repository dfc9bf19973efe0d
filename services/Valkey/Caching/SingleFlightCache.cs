using System.Collections.Concurrent;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// Cache-aside with thundering-herd protection across processes. When an entry is missing, at most one caller in the
/// whole fleet loads the origin:
/// <list type="number">
/// <item>in-process, concurrent callers for one key share one flight, so a process sends at most one lock attempt;</item>
/// <item>across processes, <c>SET key:lock token NX PX lease</c> elects a loader, which takes a fencing token (<c>INCR</c>);</item>
/// <item>the others wait for the fill announced on pub/sub (one subscription per process), not by polling, for at most
/// <see cref="SingleFlightOptions.WaitTimeout"/>, then load the origin themselves with bounded concurrency;</item>
/// <item>the fill is one Lua step that refuses a stale fence (a holder whose lease expired) and an older version
/// (a write-through or change-data capture got there first), then publishes;</item>
/// <item>the lock is released by compare-and-delete (<c>DELIFEQ</c> where the server has it, Lua otherwise).</item>
/// </list>
/// Keys must carry a hash tag (<c>catalog:product:{42}</c>): the lock and fence keys append to it and share its slot.
/// It does not protect an origin from distinct keys missing together; that is what TTL jitter is for.
/// </summary>
public sealed class SingleFlightCache : IAsyncDisposable
{
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly IDatabase _database;
    private readonly SingleFlightOptions _options;
    private readonly ValkeyScript _fill = ValkeyScript.Load<SingleFlightCache>("fill");
    private readonly ValkeyScript _release = ValkeyScript.Load<SingleFlightCache>("release");
    private readonly ConcurrentDictionary<string, Lazy<Task<CacheRead>>> _flights = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _refreshing = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _fallbackLoads;
    private readonly object _subscribeGate = new();
    private Task? _subscription;
    private int _deleteIfEqual = -1; // -1 unknown, 0 no, 1 yes (DELIFEQ, Valkey 9)

    public SingleFlightCache(IConnectionMultiplexer multiplexer, SingleFlightOptions options)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.LockLease, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.WaitTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.FallbackConcurrency, 1);
        _multiplexer = multiplexer;
        _database = multiplexer.GetDatabase();
        _options = options;
        _fallbackLoads = new SemaphoreSlim(options.FallbackConcurrency);
    }

    public SingleFlightCounters Counters { get; } = new();

    /// <summary>Reads <paramref name="key"/>, loading it through <paramref name="load"/> at most once fleet-wide when missing.</summary>
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

        var mine = new Lazy<Task<CacheRead>>(() => FlyAsync(key, load, entry));
        var flight = _flights.GetOrAdd(key, mine);
        try
        {
            var result = await flight.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!ReferenceEquals(flight, mine))
            {
                Counters.Coalesced();
                return result with { Outcome = CacheOutcome.Coalesced };
            }
            return result;
        }
        finally
        {
            if (ReferenceEquals(flight, mine))
            {
                _flights.TryRemove(new KeyValuePair<string, Lazy<Task<CacheRead>>>(key, mine));
            }
        }
    }

    /// <summary>Write-through: stores a value unless a newer version is cached. Returns false when refused.</summary>
    public async Task<bool> SetAsync(string key, OriginValue value, CacheEntryOptions entry)
    {
        return await FillAsync(key, value, entry, fence: "").ConfigureAwait(false) == 1;
    }

    public Task<bool> RemoveAsync(string key) => _database.KeyDeleteAsync(key);

    public async ValueTask DisposeAsync()
    {
        if (_subscription is { IsCompletedSuccessfully: true })
        {
            try
            {
                await _multiplexer.GetSubscriber().UnsubscribeAsync(RedisChannel.Literal(_options.Channel)).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or RedisException)
            {
                // The host is shutting down and the connection (or its tracing) went first: the subscription ends with it.
            }
        }
        _fallbackLoads.Dispose();
    }

    private async Task<CacheRead> FlyAsync(string key, Func<CancellationToken, Task<OriginValue>> load, CacheEntryOptions entry)
    {
        await SubscribeAsync().ConfigureAwait(false);
        var lockKey = key + ":lock";
        var token = Guid.NewGuid().ToString("N");
        if (await _database.StringSetAsync(lockKey, token, _options.LockLease, When.NotExists).ConfigureAwait(false))
        {
            try
            {
                var fence = await TakeFenceAsync(key).ConfigureAwait(false);
                var loaded = await LoadOriginAsync(load).ConfigureAwait(false);
                await FillAsync(key, loaded, entry, fence).ConfigureAwait(false);
                Counters.Miss();
                return new CacheRead(loaded.Payload, loaded.Version, CacheOutcome.Miss);
            }
            finally
            {
                await ReleaseAsync(lockKey, token).ConfigureAwait(false);
            }
        }

        // Another process is loading. Register before re-reading, so a fill that lands in between is not missed.
        var started = TimeProvider.System.GetTimestamp();
        var filled = _waiters.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var cached = await ReadAsync(key).ConfigureAwait(false);
        if (cached is null && await filled.Task.WaitAsync(_options.WaitTimeout).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default).ConfigureAwait(false))
        {
            cached = await ReadAsync(key).ConfigureAwait(false);
        }
        _waiters.TryRemove(new KeyValuePair<string, TaskCompletionSource>(key, filled));
        Counters.LockWait(TimeProvider.System.GetElapsedTime(started));
        if (cached is { } value)
        {
            Counters.Coalesced();
            return value.As(CacheOutcome.Coalesced);
        }

        // The holder did not fill in time (slow origin, lost holder): load ourselves, a few at a time per process.
        await _fallbackLoads.WaitAsync().ConfigureAwait(false);
        try
        {
            var loaded = await LoadOriginAsync(load).ConfigureAwait(false);
            await FillAsync(key, loaded, entry, fence: "").ConfigureAwait(false);
            Counters.Miss();
            return new CacheRead(loaded.Payload, loaded.Version, CacheOutcome.Miss);
        }
        finally
        {
            _fallbackLoads.Release();
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
                _subscription = _multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal(_options.Channel), (_, key) =>
                {
                    if (_waiters.TryRemove(key.ToString(), out var waiter))
                    {
                        waiter.TrySetResult();
                    }
                });
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
            var lockKey = key + ":lock";
            var token = Guid.NewGuid().ToString("N");
            try
            {
                if (await _database.StringSetAsync(lockKey, token, _options.LockLease, When.NotExists).ConfigureAwait(false))
                {
                    try
                    {
                        var fence = await TakeFenceAsync(key).ConfigureAwait(false);
                        await FillAsync(key, await LoadOriginAsync(load).ConfigureAwait(false), entry, fence).ConfigureAwait(false);
                    }
                    finally
                    {
                        await ReleaseAsync(lockKey, token).ConfigureAwait(false);
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
        using var timeout = new CancellationTokenSource(_options.LockLease * 2);
        return await load(timeout.Token).ConfigureAwait(false);
    }

    private async Task<string> TakeFenceAsync(string key)
    {
        var fenceKey = key + ":fence";
        var fence = await _database.StringIncrementAsync(fenceKey).ConfigureAwait(false);
        // Fences only need to outlive a lease; the expiry keeps the key bounded.
        _ = _database.KeyExpireAsync(fenceKey, TimeSpan.FromDays(1), CommandFlags.FireAndForget);
        return fence.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task<long> FillAsync(string key, OriginValue value, CacheEntryOptions entry, string fence)
    {
        var negative = value.Payload is null;
        var ttl = negative ? entry.NegativeTimeToLive : entry.TimeToLive * (1 + Random.Shared.NextDouble() * entry.Jitter);
        var soft = !negative && entry.SoftTimeToLive is { } softTtl ? DateTimeOffset.UtcNow.Add(softTtl).ToUnixTimeMilliseconds() : 0;
        var result = await _fill.EvaluateAsync(_database, [key, key + ":fence"],
        [
            CacheEnvelope.Encode(value, soft), value.Version, (long)ttl.TotalMilliseconds, fence, _options.Channel, key,
        ]).ConfigureAwait(false);
        var code = (long)result;
        if (code != 1)
        {
            Counters.FillRefused();
        }
        return code;
    }

    private async Task ReleaseAsync(string lockKey, string token)
    {
        if (Volatile.Read(ref _deleteIfEqual) == -1)
        {
            var info = await _database.ExecuteAsync("COMMAND", "INFO", "DELIFEQ").ConfigureAwait(false);
            Volatile.Write(ref _deleteIfEqual, info.Length > 0 && !info[0].IsNull ? 1 : 0);
        }
        if (_deleteIfEqual == 1)
        {
            await _database.ExecuteAsync("DELIFEQ", lockKey, token).ConfigureAwait(false);
        }
        else
        {
            await _release.EvaluateAsync(_database, [lockKey], [token]).ConfigureAwait(false);
        }
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
