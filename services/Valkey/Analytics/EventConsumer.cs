using Microsoft.Extensions.Logging;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.Valkey.Analytics;

/// <summary>How a consumer reads and how long the views it writes live.</summary>
public sealed record EventConsumerOptions
{
    /// <summary>Entries per read and per apply step (one script call).</summary>
    public int BatchSize { get; init; } = 256;

    /// <summary>An entry another consumer has held unacknowledged this long is claimed (its consumer is presumed dead).</summary>
    public TimeSpan ClaimAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often pending entries of other consumers are looked for.</summary>
    public TimeSpan ClaimInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest pause between reads when the stream is idle (reads back off up to it).</summary>
    public TimeSpan MaxIdleWait { get; init; } = TimeSpan.FromMilliseconds(100);

    public int DeadLetterMaxLength { get; init; } = 10_000;

    /// <summary>
    /// A member idle this long with nothing pending is removed from the group: every restart joins under a new name,
    /// and without this the group's member list would grow forever. A member with pending entries is never removed
    /// (its entries are claimed first).
    /// </summary>
    public TimeSpan ForgetIdleConsumersAfter { get; init; } = TimeSpan.FromHours(1);
}

/// <summary>Running totals of one consumer, for the meter and the tests.</summary>
public sealed class ConsumerCounters
{
    private long _applied, _duplicates, _dead, _claimed, _batches;
    public long Applied => Interlocked.Read(ref _applied);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long DeadLettered => Interlocked.Read(ref _dead);
    public long Claimed => Interlocked.Read(ref _claimed);
    public long Batches => Interlocked.Read(ref _batches);

    internal void Add(long applied, long duplicates, long dead)
    {
        Interlocked.Add(ref _applied, applied);
        Interlocked.Add(ref _duplicates, duplicates);
        Interlocked.Add(ref _dead, dead);
        Interlocked.Increment(ref _batches);
    }

    internal void AddClaimed(long count) => Interlocked.Add(ref _claimed, count);
}

/// <summary>
/// One member of the <c>analytics</c> consumer group on the event stream. It reads new entries with
/// <c>XREADGROUP</c>, takes over entries a crashed member left pending with <c>XAUTOCLAIM</c>, and applies each batch
/// with one script that counts, marks applied (deduplicated by event id) and acknowledges in one atomic step. Any
/// number of consumers, in any number of processes, share the work; each event is counted once.
/// </summary>
public sealed class EventConsumer
{
    private readonly IDatabase _database;
    private readonly ValkeyScript _apply = ValkeyScript.Load<EventConsumer>("apply");
    private readonly EventConsumerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    public EventConsumer(IConnectionMultiplexer multiplexer, string name, EventConsumerOptions options, ILogger logger, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        _database = multiplexer.GetDatabase();
        Name = name;
        _options = options;
        _logger = logger;
        _time = time ?? TimeProvider.System;
    }

    public string Name { get; }
    public ConsumerCounters Counters { get; } = new();

    /// <summary>Hour buckets outlive the longest window (7 days) by a day; the dedupe set outlives the oldest event accepted.</summary>
    public static readonly TimeSpan BucketTtl = TimeSpan.FromDays(8);
    public static readonly TimeSpan DedupeTtl = EventRules.MaxAge + TimeSpan.FromHours(2);
    public static readonly TimeSpan MinuteTtl = TimeSpan.FromHours(6);

    /// <summary>Creates the group at the start of the stream (events published before analytics started count too).</summary>
    public async Task EnsureGroupAsync()
    {
        try
        {
            await _database.StreamCreateConsumerGroupAsync(AnalyticsKeys.Stream, AnalyticsKeys.ConsumerGroup, StreamPosition.Beginning, createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // Another instance created it: the group's position is shared, which is the point.
        }
    }

    /// <summary>Runs until cancelled; a Valkey outage pauses it, and it resumes from the group's position when Valkey returns.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var idle = TimeSpan.FromMilliseconds(5);
        var nextClaim = _time.GetTimestamp();
        var groupReady = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (!groupReady)
                {
                    await EnsureGroupAsync().ConfigureAwait(false);
                    groupReady = true;
                }
                if (_time.GetElapsedTime(nextClaim) >= TimeSpan.Zero)
                {
                    await ClaimAbandonedAsync().ConfigureAwait(false);
                    await ForgetIdleConsumersAsync().ConfigureAwait(false);
                    nextClaim = _time.GetTimestamp() + (long)(_options.ClaimInterval.TotalSeconds * _time.TimestampFrequency);
                }
                if (await ReadNewAsync().ConfigureAwait(false) > 0)
                {
                    idle = TimeSpan.FromMilliseconds(5);
                    continue;
                }
                await Task.Delay(idle, _time, cancellationToken).ConfigureAwait(false);
                idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, _options.MaxIdleWait.Ticks));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RedisException)
            {
                // Entries read but not applied stay pending in the group; this consumer (or another) picks them up.
                if (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
                {
                    groupReady = false; // the stream was lost (a flush, a restart without persistence): start a new group
                    _logger.LogWarning("Analytics consumer {Consumer}: the consumer group is gone; creating it again.", Name);
                }
                else if (Resilience.ValkeyFailures.IsUnavailable(ex))
                {
                    _logger.LogWarning(ex, "Analytics consumer {Consumer} paused: Valkey is unavailable.", Name);
                }
                else
                {
                    // A defect (a script error, a permission): loud, but the worker lives on and retries.
                    _logger.LogError(ex, "Analytics consumer {Consumer} failed; retrying.", Name);
                }
                await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Reads and applies new entries until none is left; returns how many were handled (tests, benchmarks, tools).</summary>
    public async Task<int> DrainAsync()
    {
        await EnsureGroupAsync().ConfigureAwait(false);
        var total = 0;
        for (var read = await ReadNewAsync().ConfigureAwait(false); read > 0; read = await ReadNewAsync().ConfigureAwait(false))
        {
            total += read;
        }
        return total;
    }

    /// <summary>Reads one batch of new entries and applies it; returns the number of entries handled.</summary>
    public async Task<int> ReadNewAsync()
    {
        var entries = await ReadAsync().ConfigureAwait(false);
        if (entries.Length > 0)
        {
            await ApplyAsync(entries).ConfigureAwait(false);
        }
        return entries.Length;
    }

    /// <summary>Reads a batch of new entries for this consumer without applying them (they stay pending until applied).</summary>
    public Task<StreamEntry[]> ReadAsync() =>
        _database.StreamReadGroupAsync(AnalyticsKeys.Stream, AnalyticsKeys.ConsumerGroup, Name, StreamPosition.NewMessages, _options.BatchSize);

    /// <summary>Takes over and applies entries other consumers have left pending longer than <see cref="EventConsumerOptions.ClaimAfter"/>.</summary>
    public async Task<int> ClaimAbandonedAsync()
    {
        var total = 0;
        RedisValue cursor = "0-0";
        do
        {
            var claimed = await _database.StreamAutoClaimAsync(AnalyticsKeys.Stream, AnalyticsKeys.ConsumerGroup, Name,
                (long)_options.ClaimAfter.TotalMilliseconds, cursor, _options.BatchSize).ConfigureAwait(false);
            var live = claimed.ClaimedEntries.Where(e => !e.IsNull).ToArray();
            if (live.Length > 0)
            {
                Counters.AddClaimed(live.Length);
                await ApplyAsync(live).ConfigureAwait(false);
            }
            // Entries trimmed from the stream while pending come back as deleted ids; XAUTOCLAIM already removed them.
            cursor = claimed.NextStartId;
            total += live.Length;
        }
        while (cursor != "0-0" && total < _options.BatchSize * 16);
        return total;
    }

    /// <summary>Removes members idle longer than <see cref="EventConsumerOptions.ForgetIdleConsumersAfter"/> with nothing pending; returns how many.</summary>
    public async Task<int> ForgetIdleConsumersAsync()
    {
        var forgotten = 0;
        foreach (var member in await _database.StreamConsumerInfoAsync(AnalyticsKeys.Stream, AnalyticsKeys.ConsumerGroup).ConfigureAwait(false))
        {
            if (member.Name != Name && member.PendingMessageCount == 0 && member.IdleTimeInMilliseconds >= _options.ForgetIdleConsumersAfter.TotalMilliseconds)
            {
                // XGROUP DELCONSUMER would drop pending entries with the member; there are none, checked just above.
                await _database.StreamDeleteConsumerAsync(AnalyticsKeys.Stream, AnalyticsKeys.ConsumerGroup, member.Name).ConfigureAwait(false);
                forgotten++;
            }
        }
        return forgotten;
    }

    /// <summary>Validates, applies and acknowledges a batch in one script call.</summary>
    public async Task ApplyAsync(IReadOnlyList<StreamEntry> entries)
    {
        var now = _time.GetUtcNow();
        var dead = new List<RedisValue>();
        var events = new List<RedisValue>(entries.Count * 9);
        foreach (var entry in entries)
        {
            var parsed = AnalyticsEvent.FromFields(entry.Values, out var problem);
            var errors = parsed is null ? null : EventRules.Validate(parsed, now);
            if (parsed is null || errors!.Count > 0)
            {
                dead.Add(entry.Id);
                dead.Add(problem ?? EventRules.Describe(errors!));
                continue;
            }
            var at = parsed.Timestamp.UtcDateTime;
            events.Add(entry.Id);
            events.Add(parsed.Id);
            events.Add(parsed.Type);
            events.Add(AnalyticsKeys.HourId(at));
            events.Add(AnalyticsKeys.DayId(DateOnly.FromDateTime(at)));
            events.Add(AnalyticsKeys.MinuteId(at));
            events.Add(parsed.VisitorId ?? "");
            events.Add(parsed.Type switch
            {
                EventTypes.ProductViewed => parsed.ProductId!.Value,
                EventTypes.CartItemAdded => parsed.Quantity!.Value,
                _ => "",
            });
            events.Add(parsed.Lines is null ? "" : string.Join(',', parsed.Lines.Select(l => $"{l.ProductId}:{l.Quantity}")));
        }
        RedisValue[] values =
        [
            AnalyticsKeys.ConsumerGroup, AnalyticsKeys.Prefix, "{" + AnalyticsKeys.Tag + "}",
            (long)DedupeTtl.TotalSeconds, (long)BucketTtl.TotalSeconds, (long)BucketTtl.TotalSeconds, (long)MinuteTtl.TotalSeconds,
            _options.DeadLetterMaxLength, dead.Count / 2, .. dead, .. events,
        ];
        var result = (long[])(await _apply.EvaluateAsync(_database, [AnalyticsKeys.Stream, AnalyticsKeys.DeadLetters, AnalyticsKeys.DirtyHours], values).ConfigureAwait(false))!;
        Counters.Add(result[0], result[1], result[2]);
    }
}
