using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ShopReference.Valkey;
using ShopReference.Contracts.Events;
using ShopReference.Valkey.Scripting;
using ShopReference.Valkey.Streams;
using StackExchange.Redis;

namespace ShopReference.Analytics.Counting;

/// <summary>How the analytics consumer reads (the consumer group's settings) and bounds its dead letters.</summary>
public sealed record EventConsumerOptions
{
    /// <summary>
    /// Entries per read. A batch is applied with one script call per partition it touches, so with 16 partitions a
    /// batch of 1,024 gives each call about 64 events: enough to pay a round trip per many events (256 made ingest 20 %
    /// slower, docs/benchmarks.md), short enough not to hold the server long.
    /// </summary>
    [Range(1, 100_000)]
    public int BatchSize { get; init; } = 1024;

    /// <summary>An entry another consumer has held unacknowledged this long is claimed (its consumer is presumed dead).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ClaimAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often pending entries of other consumers are looked for.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ClaimInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest pause between reads when the stream is idle.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan MaxIdleWait { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The pause after a batch that was not full (see <see cref="StreamConsumerOptions.FillWait"/>): 50 ms keeps a
    /// leaderboard at most that much later and, at a few thousand views a second, makes each batch tens of events
    /// instead of a few (docs/capacity.md measures the difference).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan FillWait { get; init; } = TimeSpan.FromMilliseconds(50);

    [Range(1, 100_000_000)]

    public int DeadLetterMaxLength { get; init; } = 10_000;

    /// <summary>A member idle this long with nothing pending is removed from the group.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "365.00:00:00")]
    public TimeSpan ForgetIdleConsumersAfter { get; init; } = TimeSpan.FromHours(1);

    internal StreamConsumerOptions Group => new()
    {
        BatchSize = BatchSize, ClaimAfter = ClaimAfter, ClaimInterval = ClaimInterval, MaxIdleWait = MaxIdleWait,
        FillWait = FillWait, ForgetIdleConsumersAfter = ForgetIdleConsumersAfter,
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
/// <see cref="StreamConsumerGroup"/> reads, claims and tidies), whose handler applies each batch. A batch is split by
/// partition (<see cref="EventCounts"/>); each partition applies its parts with one script that counts and marks them
/// applied in one atomic step (deduplicated by type and id), the partitions in parallel, on whichever shards hold them.
/// Only then are the entries acknowledged. A crash in between redelivers the batch, and the partitions that had applied
/// it find their marks and skip it: each event is counted once. Any number of consumers, in any number of processes,
/// share the work.
/// </summary>
public sealed class EventConsumer
{
    private readonly IDatabase _database;
    private readonly ValkeyScript _apply = ValkeyScript.Load<EventConsumer>("apply_once");
    private readonly ValkeyScript _settle = ValkeyScript.Load<EventConsumer>("settle");
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

    /// <summary>How long an hour bucket is kept (the longest window and a day).</summary>
    public static TimeSpan BucketTtl => EventCounts.BucketTtl;

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

    /// <summary>
    /// The analytics service's activity source (traced under its application name). A batch applied is work a reader
    /// may want to see, so it gets a trace of its own with its scripts beneath it; the empty polls between batches are
    /// background noise and are sampled away (ServiceDefaults' <c>BackgroundNoiseSampler</c>).
    /// </summary>
    public static readonly ActivitySource Tracing = new("ShopReference.Analytics");

    /// <summary>Validates a batch, applies it partition by partition, then dead-letters the invalid entries and acknowledges all.</summary>
    public async Task ApplyAsync(IReadOnlyList<StreamEntry> entries)
    {
        using var activity = Tracing.StartActivity("analytics apply batch");
        activity?.SetTag("shop.analytics.entries", entries.Count);
        activity?.SetTag("shop.analytics.consumer", Name); // which replica applied it (its consumer-group member)
        var now = _time.GetUtcNow();
        var dead = new List<RedisValue>();
        var valid = new List<RedisValue>(entries.Count);
        var batches = new Dictionary<int, PartitionBatch>();
        PartitionBatch BatchOf(int partition) => batches.TryGetValue(partition, out var batch) ? batch : batches[partition] = new PartitionBatch(partition);
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
            EventCounts.AddTo(BatchOf, valid.Count, parsed);
            valid.Add(entry.Id);
        }

        // An event counts as applied when any of its guarded parts was new: a redelivery of a batch that failed half-way
        // applies the rest, and the event is counted then (the failed attempt counted nothing). An unguarded part (a
        // visitor's PFADD) is applied every time and says nothing either way.
        var applied = new bool[valid.Count];
        await Task.WhenAll(batches.Values.Select(async batch =>
        {
            var flags = (long[])(await _apply.EvaluateAsync(_database, batch.Keys, batch.Values).ConfigureAwait(false))!;
            for (var part = 0; part < flags.Length; part++)
            {
                if (flags[part] == 1) applied[batch.Events[part]] = true;
            }
        })).ConfigureAwait(false);

        if (entries.Count > 0)
        {
            RedisValue[] values = [EventStream.ConsumerGroup, _options.DeadLetterMaxLength, dead.Count / 2, .. dead, .. valid];
            await _settle.EvaluateAsync(_database, [EventStream.Key, AnalyticsKeys.DeadLetters], values).ConfigureAwait(false);
        }
        var appliedCount = applied.Count(a => a);
        Counters.Add(appliedCount, valid.Count - appliedCount, dead.Count / 2);
        activity?.SetTag("shop.analytics.applied", appliedCount);
        activity?.SetTag("shop.analytics.duplicates", valid.Count - appliedCount);
        activity?.SetTag("shop.analytics.dead_lettered", dead.Count / 2);
    }
}
