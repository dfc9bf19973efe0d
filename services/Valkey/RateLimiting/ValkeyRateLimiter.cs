using System.Threading.RateLimiting;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.Valkey.RateLimiting;

/// <summary>
/// Base of the window-based limiters: one partition, one key, one <c>EVALSHA</c> per decision, atomic in Lua and
/// timed by the server's <c>TIME</c>, so any number of instances on any clocks share one exact count. Never queues:
/// a rejected lease carries <see cref="MetadataName.RetryAfter"/>. Throws StackExchange.Redis exceptions when Valkey
/// cannot decide; what to do then is the caller's outage policy (see <see cref="ResilientPartitionedRateLimiter{TResource}"/>).
/// Only <c>AcquireAsync</c> decides: the synchronous <c>AttemptAcquire</c> answers "not acquired" without a round trip,
/// because a thread blocked on Valkey per request starves the pool under load (ASP.NET Core's middleware then asks
/// <c>AcquireAsync</c>).
/// </summary>
public abstract class ValkeyRateLimiter : RateLimiter
{
    private readonly IDatabase _database;
    private readonly ValkeyScript _script;
    private readonly RedisKey[] _keys;
    private readonly LeaseCounters _counters;

    /// <summary>A limiter for one <paramref name="partition"/> under <c>{KeyPrefix}:{entity}:{partition}</c>, deciding with the embedded <paramref name="script"/>.</summary>
    protected ValkeyRateLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options, string entity, string script)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _database = database;
        Options = options;
        _script = ValkeyScript.Load<ValkeyRateLimiter>(script);
        _keys = [KeySchema.TaggedKey(options.KeyPrefix, entity, partition)];
        _counters = new LeaseCounters(options.PermitLimit, options.TimeProvider);
    }

    /// <summary>The limit and window.</summary>
    public ValkeyRateLimiterOptions Options { get; }

    /// <summary>The key this partition's state lives under (one hash slot).</summary>
    public RedisKey Key => _keys[0];

    /// <inheritdoc/>
    public override TimeSpan? IdleDuration => _counters.IdleDuration;

    /// <inheritdoc/>
    public override RateLimiterStatistics GetStatistics() => _counters.Statistics();

    /// <inheritdoc/>
    /// <remarks>Never admits and does no I/O: only <see cref="RateLimiter.AcquireAsync(int, CancellationToken)"/> decides (see the class remarks).</remarks>
    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        CheckPermits(permitCount);
        return DecidedOnlyAsynchronouslyLease.Instance;
    }

    /// <inheritdoc/>
    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        CheckPermits(permitCount);
        cancellationToken.ThrowIfCancellationRequested();
        return Record(RateLimitDecision.Parse(await _script.EvaluateAsync(_database, _keys, Arguments(permitCount)).ConfigureAwait(false)));
    }

    /// <summary>ARGV for the script: limit, window in ms, permits, then whatever the algorithm adds.</summary>
    protected virtual RedisValue[] Arguments(int permitCount) =>
        [Options.PermitLimit, (long)Options.Window.TotalMilliseconds, permitCount];

    private void CheckPermits(int permitCount)
    {
        if (permitCount < 0 || permitCount > Options.PermitLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(permitCount), permitCount, $"Between 0 and the permit limit ({Options.PermitLimit}).");
        }
    }

    private DecisionLease Record(RateLimitDecision decision)
    {
        _counters.Record(decision);
        return new DecisionLease(decision);
    }
}

/// <summary>Fixed window: at most <c>PermitLimit</c> per aligned window; a burst of 2x is possible across a boundary.</summary>
public sealed class FixedWindowLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options)
    : ValkeyRateLimiter(database, partition, options, "fw", "fixed_window");

/// <summary>Sliding window log: exact over every window-long interval; memory grows with the limit (one entry per permit).</summary>
public sealed class SlidingWindowLogLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options)
    : ValkeyRateLimiter(database, partition, options, "swl", "sliding_window_log")
{
    /// <inheritdoc/>
    protected override RedisValue[] Arguments(int permitCount) => [.. base.Arguments(permitCount), Guid.NewGuid().ToString("N")];
}

/// <summary>Sliding window counter: two counters per partition, approximates the sliding window (documented bound).</summary>
public sealed class SlidingWindowCounterLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options)
    : ValkeyRateLimiter(database, partition, options, "swc", "sliding_window_counter");

/// <summary>Token bucket: bursts up to <c>PermitLimit</c>, refilled smoothly at PermitLimit per window.</summary>
public sealed class TokenBucketLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options)
    : ValkeyRateLimiter(database, partition, options, "tb", "token_bucket");

/// <summary>GCRA: the token bucket's behaviour stored as a single timestamp per partition.</summary>
public sealed class GcraLimiter(IDatabase database, string partition, ValkeyRateLimiterOptions options)
    : ValkeyRateLimiter(database, partition, options, "gcra", "gcra");
