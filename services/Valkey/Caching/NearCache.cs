using StackExchange.Redis;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// An in-process layer in front of <see cref="SingleFlightCache"/>: a hit is a dictionary lookup, and every change of an
/// entry anywhere in the fleet removes this process's copy within milliseconds.
/// <para>
/// Invalidation rides the fill announcements the cache already publishes: every write of an entry — a load, a
/// write-through, change-data capture, a deletion's tombstone, an eviction — is one script that sets the key and
/// publishes its name in the same atomic step, so no change can happen without its message. Pub/sub is at most once,
/// so the near cache only trusts the channel while it can prove it is live:
/// </para>
/// <list type="bullet">
/// <item>a copy is kept only when no invalidation of its key (and no flush) arrived between the start of its Valkey read
/// and its insertion, checked and inserted atomically with respect to invalidations, so a message that overtakes the
/// reply is never undone and no copy older than an applied invalidation is ever visible;</item>
/// <item>a lost or re-established connection flushes everything, and nothing is kept again until this process has
/// received a probe it published after the flush (the subscription was live when the probe was sent, and pub/sub keeps
/// order on one connection, so every later invalidation arrives);</item>
/// <item>probes go out every <see cref="NearCacheOptions.ProbeInterval"/>; when none comes back within
/// <see cref="NearCacheOptions.ProbeTimeout"/>, the channel is treated as broken in the same way;</item>
/// <item><see cref="NearCacheOptions.TimeToLive"/> bounds what nothing announces (a key set by hand).</item>
/// </list>
/// Payload arrays are shared between readers of a local hit: callers must not modify them.
/// </summary>
public sealed class NearCache : IAsyncDisposable
{
    /// <summary>The message that empties every process's near cache (after a bulk reset of the entries in Valkey).</summary>
    public const string FlushMessage = "!flush";

    private const string ProbePrefix = "!probe:";
    private const int Stripes = 1024;

    private readonly SingleFlightCache _inner;
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly NearCacheOptions _options;
    private readonly RedisChannel _channel;
    private readonly LocalEntries _entries;
    private readonly long[] _generations = new long[Stripes];
    private readonly Change?[] _lastChanges = new Change?[Stripes];
    private readonly Lock[] _stripeLocks = Enumerable.Range(0, Stripes).Select(_ => new Lock()).ToArray();
    private readonly string _probeTag = $"{ProbePrefix}{Guid.NewGuid():N}:";
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _prober = Task.CompletedTask;
    private readonly Lock _trustGate = new();
    private long _epoch;
    private long _lastProbeBack;
    private volatile bool _trusted;
    private volatile bool _subscribed;

    /// <summary>Puts an in-process layer in front of <paramref name="inner"/>; it subscribes to the inner cache's channel and keeps entries only while a probe proves the subscription live.</summary>
    public NearCache(SingleFlightCache inner, IConnectionMultiplexer multiplexer, NearCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxEntries, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.TimeToLive, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.ProbeInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.ProbeTimeout, options.ProbeInterval);
        _inner = inner;
        _multiplexer = multiplexer;
        _options = options;
        _channel = RedisChannel.Literal(inner.Channel);
        _entries = new LocalEntries(options.MaxEntries, options.MaxBytes, TimeProvider.System);
        _onMessage = OnMessage;
        if (options.Enabled)
        {
            multiplexer.ConnectionFailed += OnConnectionChanged;
            multiplexer.ConnectionRestored += OnConnectionChanged;
            _prober = Task.Run(ProbeAsync);
        }
    }

    /// <summary>What this near cache did (hits in process, invalidations, flushes).</summary>
    public NearCacheCounters Counters { get; } = new();

    /// <summary>The cache behind this one (its counters count what reached Valkey).</summary>
    public SingleFlightCache Inner => _inner;

    /// <summary>Whether reads may be served from process memory at all (<see cref="NearCacheOptions.Enabled"/>).</summary>
    public bool Enabled => _options.Enabled;

    /// <summary>Whether the invalidation channel is proven live, so reads may be kept in process.</summary>
    public bool IsTrusted => _trusted;

    /// <summary>Entries kept in process now.</summary>
    public int Count => _entries.Count;
    /// <summary>Bytes of payload and bookkeeping kept in process now.</summary>
    public long Bytes => _entries.Bytes;

    /// <summary>
    /// Raised after an announcement was applied: from then on no copy of its key older than its version (no copy at all,
    /// for <see cref="Announcement.Removed"/>) is served here. For tests and diagnostics; raised whether or not a copy was held.
    /// </summary>
    public event Action<Announcement>? Invalidated;

    /// <summary>
    /// Reads <paramref name="key"/> from process memory when a trusted copy is there (<see cref="CacheOutcome.HitLocal"/>),
    /// else through <see cref="SingleFlightCache.GetOrLoadAsync"/>, keeping the result when no invalidation raced it.
    /// </summary>
    public async Task<CacheRead> GetOrLoadAsync(string key, Func<CancellationToken, Task<OriginValue>> load, CacheEntryOptions entry, CancellationToken cancellationToken = default)
    {
        if (!_options.Enabled)
        {
            return await _inner.GetOrLoadAsync(key, load, entry, cancellationToken).ConfigureAwait(false);
        }
        if (_trusted && _entries.TryGet(key, out var local))
        {
            Counters.LocalHit();
            return local.Value;
        }

        // Read the generations before Valkey: an invalidation that arrives while the read is in flight changes them.
        var trusted = _trusted;
        var epoch = Volatile.Read(ref _epoch);
        var stripe = Stripe(key);
        var generation = Volatile.Read(ref _generations[stripe]);
        var read = await _inner.GetOrLoadAsync(key, load, entry, cancellationToken).ConfigureAwait(false);
        Counters.LocalMiss();
        if (trusted && read.Outcome != CacheOutcome.Stale) // a stale read is being refreshed: its fill will announce itself
        {
            var lifetime = read.Found ? entry.TimeToLive : entry.NegativeTimeToLive;
            // Checked and inserted under the stripe's lock, which announcements also take: once an announcement has
            // been applied, no read that predates it can become visible, not even for an instant.
            lock (_stripeLocks[stripe])
            {
                if (Volatile.Read(ref _epoch) == epoch && NothingNewerAnnounced(key, stripe, generation, read.Version))
                {
                    _entries.Set(key, read with { Outcome = CacheOutcome.HitLocal }, lifetime < _options.TimeToLive ? lifetime : _options.TimeToLive);
                }
            }
        }
        return read;
    }

    /// <summary>
    /// <see cref="GetOrLoadAsync(string, Func{CancellationToken, Task{OriginValue}}, CacheEntryOptions, CancellationToken)"/>
    /// with the payload decoded: a local hit decodes a copy once and then hands every reader the same instance, so
    /// <typeparamref name="T"/> must be immutable (a record with init-only members). Null when the item does not exist.
    /// </summary>
    public async ValueTask<(T? Value, CacheOutcome Outcome)> GetOrLoadAsync<T>(string key, Func<CancellationToken, Task<OriginValue>> load,
        CacheEntryOptions entry, Func<byte[], T> decode, CancellationToken cancellationToken = default) where T : class
    {
        ArgumentNullException.ThrowIfNull(decode);
        if (_options.Enabled && _trusted && _entries.TryGet(key, out var local))
        {
            Counters.LocalHit();
            if (local.Value.Payload is not { } payload)
            {
                return (null, CacheOutcome.HitLocal);
            }
            var decoded = local.Decoded as T ?? decode(payload);
            local.Decoded = decoded;
            return (decoded, CacheOutcome.HitLocal);
        }
        var read = await GetOrLoadAsync(key, load, entry, cancellationToken).ConfigureAwait(false);
        return (read.Payload is { } bytes ? decode(bytes) : null, read.Outcome);
    }

    /// <inheritdoc cref="SingleFlightCache.SetAsync"/>
    public async Task<bool> SetAsync(string key, OriginValue value, CacheEntryOptions entry, bool inserted = false)
    {
        try
        {
            return await _inner.SetAsync(key, value, entry, inserted).ConfigureAwait(false);
        }
        finally
        {
            Invalidate(key); // read-your-writes in this process, without waiting for the announcement
        }
    }

    /// <inheritdoc cref="SingleFlightCache.DeleteAsync"/>
    public async Task DeleteAsync(string key)
    {
        try
        {
            await _inner.DeleteAsync(key).ConfigureAwait(false);
        }
        finally
        {
            Invalidate(key);
        }
    }

    /// <inheritdoc cref="SingleFlightCache.RemoveAsync"/>
    public async Task<bool> RemoveAsync(string key)
    {
        try
        {
            return await _inner.RemoveAsync(key).ConfigureAwait(false);
        }
        finally
        {
            Invalidate(key);
        }
    }

    /// <summary>Empties every process's near cache: after entries were removed in bulk (without one announcement each).</summary>
    public async Task FlushEverywhereAsync()
    {
        Flush();
        await _multiplexer.GetSubscriber().PublishAsync(_channel, FlushMessage).ConfigureAwait(false);
    }

    /// <summary>Stops the probe and unsubscribes from the channel.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_options.Enabled)
        {
            return;
        }
        _multiplexer.ConnectionFailed -= OnConnectionChanged;
        _multiplexer.ConnectionRestored -= OnConnectionChanged;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _prober.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_subscribed)
        {
            try
            {
                await _multiplexer.GetSubscriber().UnsubscribeAsync(_channel, _onMessage).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or RedisException)
            {
                // The connection went first: the subscription ends with it.
            }
        }
        _stopping.Dispose();
    }

    private void OnMessage(RedisChannel channel, RedisValue message)
    {
        var text = (string?)message;
        if (text is null)
        {
            return;
        }
        if (text.StartsWith(ProbePrefix, StringComparison.Ordinal))
        {
            // Only this process's probe, sent since the last flush, proves the subscription was live after that flush.
            if (text.StartsWith(_probeTag, StringComparison.Ordinal) && long.TryParse(text.AsSpan(_probeTag.Length), out var sentInEpoch))
            {
                Volatile.Write(ref _lastProbeBack, TimeProvider.System.GetTimestamp());
                lock (_trustGate) // a distrust running now must not be overtaken by a probe it made obsolete
                {
                    if (sentInEpoch == Volatile.Read(ref _epoch))
                    {
                        _trusted = true;
                    }
                }
            }
            return;
        }
        if (text == FlushMessage)
        {
            Flush();
            return;
        }
        if (Announcement.TryParse(text, out var change))
        {
            Invalidate(change.Key, change.Version);
            Invalidated?.Invoke(change);
        }
    }

    // A copy already kept stays only when it holds the announced version or a newer one, so this process's own fill,
    // announced after its reply, does not throw away what it just read. Versions only go back after a deletion, which
    // is announced as Removed and removes any copy. The stripe's generation and last change let a read in flight tell
    // whether anything raced it (NothingNewerAnnounced).
    private void Invalidate(string key, long announced = Announcement.Removed)
    {
        var stripe = Stripe(key);
        lock (_stripeLocks[stripe])
        {
            Interlocked.Increment(ref _generations[stripe]);
            _lastChanges[stripe] = new Change(key, announced);
            if (_entries.RemoveOlderThan(key, announced))
            {
                Counters.Invalidation();
            }
        }
    }

    // Whether a read that began at stripe generation `before` and returned `version` may be kept: nothing happened on
    // its stripe since, or exactly one change did and it announced this key at this version or an older one (most
    // often this process's own fill). Anything else — a removal, a newer version, two changes, another key — may
    // have made the read stale, and the copy goes.
    private bool NothingNewerAnnounced(string key, int stripe, long before, long version)
    {
        var now = _generations[stripe];
        return now == before || (now == before + 1 && _lastChanges[stripe] is { } change
            && change.Key == key && change.Version is >= 0 && change.Version <= version);
    }

    private sealed record Change(string Key, long Version);

    // Every insert checks the epoch under its stripe's lock: passing through each lock once after the increment means
    // every insert that saw the old epoch has finished, so the clear that follows removes it.
    private void Flush()
    {
        Interlocked.Increment(ref _epoch);
        foreach (var stripeLock in _stripeLocks)
        {
            stripeLock.Enter();
            stripeLock.Exit();
        }
        _entries.Clear();
        Counters.Flush();
    }

    // Anything that may have lost a message: distrust the channel until a probe sent after this comes back.
    private void Distrust()
    {
        lock (_trustGate)
        {
            _trusted = false;
            Flush();
        }
    }

    private void OnConnectionChanged(object? sender, ConnectionFailedEventArgs e) => Distrust();

    private async Task ProbeAsync()
    {
        using var timer = new PeriodicTimer(_options.ProbeInterval);
        var subscriber = _multiplexer.GetSubscriber();
        Volatile.Write(ref _lastProbeBack, TimeProvider.System.GetTimestamp());
        do
        {
            try
            {
                if (!_subscribed)
                {
                    await subscriber.SubscribeAsync(_channel, _onMessage).ConfigureAwait(false);
                    _subscribed = true;
                }
                if (_trusted && TimeProvider.System.GetElapsedTime(Volatile.Read(ref _lastProbeBack)) > _options.ProbeTimeout)
                {
                    Counters.ProbeLost();
                    Distrust();
                }
                // Not awaited: on a stalled connection the check above must keep running while the probe hangs.
                await subscriber.PublishAsync(_channel, _probeTag + Volatile.Read(ref _epoch), CommandFlags.FireAndForget).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                Distrust(); // Valkey unreachable: reads go there and fail or degrade; nothing is kept meanwhile
            }
        }
        while (await NextTickAsync(timer).ConfigureAwait(false));
    }

    private async Task<bool> NextTickAsync(PeriodicTimer timer)
    {
        try
        {
            return await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static int Stripe(string key) => (int)((uint)StringComparer.Ordinal.GetHashCode(key) % Stripes);
}
