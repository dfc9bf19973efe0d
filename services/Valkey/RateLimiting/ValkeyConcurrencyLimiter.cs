using System.Threading.RateLimiting;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.Valkey.RateLimiting;

/// <summary>
/// At most <c>PermitLimit</c> leases held at once across every instance. A lease expires after <c>Window</c> unless its
/// holder renews it, which it does every third of the window while held: a crashed holder frees its permit within
/// one window, and a long request never loses its permit to a fixed timeout. Disposing the lease releases it.
/// </summary>
public sealed class ValkeyConcurrencyLimiter : RateLimiter
{
    private readonly IDatabase _database;
    private readonly ValkeyScript _script = ValkeyScript.Load<ValkeyConcurrencyLimiter>("concurrency");
    private readonly RedisKey[] _keys;
    private readonly LeaseCounters _counters;

    /// <summary>A concurrency limiter for one <paramref name="partition"/>, under <c>{KeyPrefix}:conc:{partition}</c>.</summary>
    public ValkeyConcurrencyLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _database = database;
        Options = options;
        _keys = [KeySchema.TaggedKey(options.KeyPrefix, "conc", partition)];
        _counters = new LeaseCounters(options.PermitLimit, options.TimeProvider);
    }

    /// <summary>The limit and lease duration.</summary>
    public ValkeyRateLimiterOptions Options { get; }
    /// <summary>The key this partition's leases live under (one hash slot).</summary>
    public RedisKey Key => _keys[0];

    /// <inheritdoc/>
    public override TimeSpan? IdleDuration => _counters.IdleDuration;

    /// <inheritdoc/>
    public override RateLimiterStatistics GetStatistics() => _counters.Statistics();

    /// <inheritdoc/>
    /// <remarks>Never admits and does no I/O: only <see cref="RateLimiter.AcquireAsync(int, CancellationToken)"/> decides, as for <see cref="ValkeyRateLimiter"/>.</remarks>
    protected override RateLimitLease AttemptAcquireCore(int permitCount) => DecidedOnlyAsynchronouslyLease.Instance;

    /// <inheritdoc/>
    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var id = Guid.NewGuid().ToString("N");
        var result = await _script.EvaluateAsync(_database, _keys, Arguments("acquire", permitCount, id)).ConfigureAwait(false);
        return Record(RateLimitDecision.Parse(result), permitCount, id);
    }

    private RedisValue[] Arguments(string operation, int permitCount, string id)
    {
        if (permitCount < 0 || permitCount > Options.PermitLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(permitCount), permitCount, $"Between 0 and the permit limit ({Options.PermitLimit}).");
        }
        return [operation, Options.PermitLimit, (long)Options.Window.TotalMilliseconds, permitCount, id];
    }

    private RateLimitLease Record(RateLimitDecision decision, int permitCount, string id)
    {
        _counters.Record(decision);
        return decision.Allowed && permitCount > 0 ? new HeldLease(this, decision, permitCount, id) : new DecisionLease(decision);
    }

    /// <summary>A held permit: renewed in the background, released on dispose.</summary>
    private sealed class HeldLease : DecisionLease
    {
        private readonly ValkeyConcurrencyLimiter _owner;
        private readonly int _permits;
        private readonly string _id;
        private readonly ITimer _renewal;
        private int _disposed;

        public HeldLease(ValkeyConcurrencyLimiter owner, RateLimitDecision decision, int permits, string id) : base(decision)
        {
            _owner = owner;
            _permits = permits;
            _id = id;
            var every = owner.Options.Window / 3;
            _renewal = owner.Options.TimeProvider.CreateTimer(_ => _ = RenewAsync(), null, every, every);
        }

        private async Task RenewAsync()
        {
            try
            {
                var held = await _owner._script.EvaluateAsync(_owner._database, _owner._keys, _owner.Arguments("renew", _permits, _id)).ConfigureAwait(false);
                if ((long)held == 0)
                {
                    _renewal.Dispose(); // the lease is gone (the holder stalled past the window): nothing left to renew
                }
            }
            catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
            {
                // Valkey unreachable (or the connection closed): the next tick tries again, and on the server the
                // lease simply expires at the end of its window, as a crashed holder's would.
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 1)
            {
                return;
            }
            _renewal.Dispose();
            // Fire and forget: releasing must not block the request's completion; an unsent release expires anyway.
            _ = _owner._script.EvaluateAsync(_owner._database, _owner._keys, _owner.Arguments("release", _permits, _id), CommandFlags.FireAndForget);
        }
    }
}
