using Microsoft.Extensions.Logging;
using ShopReference.Valkey;
using ShopReference.Valkey.Events;
using ShopReference.Valkey.Scripting;
using ShopReference.Valkey.Streams;
using StackExchange.Redis;

namespace ShopReference.Analytics.Counting;

/// <summary>How the analytics consumer reads (the consumer group's settings) and bounds its dead letters.</summary>
public sealed record EventConsumerOptions
{
    /// <summary>Entries per read and per apply step (one script call).</summary>
    public int BatchSize { get; init; } = 256;

    /// <summary>An entry another consumer has held unacknowledged this long is claimed (its consumer is presumed dead).</summary>
    public TimeSpan ClaimAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often pending entries of other consumers are looked for.</summary>
    public TimeSpan ClaimInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest pause between reads when the stream is idle.</summary>
    public TimeSpan MaxIdleWait { get; init; } = TimeSpan.FromMilliseconds(100);

    public int DeadLetterMaxLength { get; init; } = 10_000;

    /// <summary>A member idle this long with nothing pending is removed from the group.</summary>
    public TimeSpan ForgetIdleConsumersAfter { get; init; } = TimeSpan.FromHours(1);

    internal StreamConsumerOptions Group => new()
    {
        BatchSize = BatchSize, ClaimAfter = ClaimAfter, ClaimInterval = ClaimInterval, MaxIdleWait = MaxIdleWait,
        ForgetIdleConsumersAfter = ForgetIdleConsumersAfter,
    };
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
/// The analytics consumer: one member of the <c>analytics</c> group on the event stream (the reusable
/// <see cref="StreamConsumerGroup"/> reads, claims and tidies), whose handler applies each batch with one script that
/// counts, marks applied (deduplicated by type and id) and acknowledges in one atomic step. Any number of consumers,
/// in any number of processes, share the work; each event is counted once.
/// </summary>
public sealed class EventConsumer
{
    private readonly IDatabase _database;
    private readonly ValkeyScript _apply = ValkeyScript.Load<EventConsumer>("apply");
    private readonly EventConsumerOptions _options;
    private readonly TimeProvider _time;
    private readonly StreamConsumerGroup _group;

    public EventConsumer(IConnectionMultiplexer multiplexer, string name, EventConsumerOptions options, ILogger logger, TimeProvider? time = null)
    {
        _database = multiplexer.GetDatabase();
        _options = options;
        _time = time ?? TimeProvider.System;
        _group = new StreamConsumerGroup(multiplexer, EventStream.Key, EventStream.ConsumerGroup, name, options.Group, logger, _time);
    }

    public string Name => _group.Member;
    public ConsumerCounters Counters { get; } = new();

    /// <summary>Hour buckets outlive the longest window (7 days) by a day; the dedupe set outlives the oldest event accepted.</summary>
    public static readonly TimeSpan BucketTtl = TimeSpan.FromDays(8);
    public static readonly TimeSpan DedupeTtl = EventRules.MaxAge + TimeSpan.FromHours(2);
    public static readonly TimeSpan MinuteTtl = TimeSpan.FromHours(6);

    public Task EnsureGroupAsync() => _group.EnsureGroupAsync();

    /// <summary>Runs until cancelled; a Valkey outage pauses it, and it resumes from the group's position when Valkey returns.</summary>
    public Task RunAsync(CancellationToken cancellationToken) => _group.RunAsync(ApplyAsync, cancellationToken);

    /// <summary>Reads and applies new entries until none is left; returns how many were handled (tests, benchmarks, tools).</summary>
    public Task<int> DrainAsync() => _group.DrainAsync(ApplyAsync);

    /// <summary>Reads one batch of new entries and applies it; returns the number of entries handled.</summary>
    public Task<int> ReadNewAsync() => _group.ReadNewAsync(ApplyAsync);

    /// <summary>Reads a batch of new entries for this consumer without applying them (they stay pending until applied).</summary>
    public Task<StreamEntry[]> ReadAsync() => _group.ReadAsync();

    /// <summary>Takes over and applies entries other consumers have left pending too long.</summary>
    public async Task<int> ClaimAbandonedAsync()
    {
        var claimed = await _group.ClaimAbandonedAsync(ApplyAsync).ConfigureAwait(false);
        Counters.AddClaimed(claimed);
        return claimed;
    }

    /// <summary>Removes members idle too long with nothing pending; returns how many.</summary>
    public Task<int> ForgetIdleConsumersAsync() => _group.ForgetIdleMembersAsync();

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
            EventStream.ConsumerGroup, AnalyticsKeys.Prefix, "{" + AnalyticsKeys.Tag + "}",
            (long)DedupeTtl.TotalSeconds, (long)BucketTtl.TotalSeconds, (long)BucketTtl.TotalSeconds, (long)MinuteTtl.TotalSeconds,
            _options.DeadLetterMaxLength, dead.Count / 2, .. dead, .. events,
        ];
        var result = (long[])(await _apply.EvaluateAsync(_database, [EventStream.Key, AnalyticsKeys.DeadLetters, AnalyticsKeys.DirtyHours], values).ConfigureAwait(false))!;
        Counters.Add(result[0], result[1], result[2]);
    }
}
