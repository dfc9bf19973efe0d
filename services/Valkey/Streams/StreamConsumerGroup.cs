using Microsoft.Extensions.Logging;
using ShopReference.Valkey.Resilience;
using StackExchange.Redis;

namespace ShopReference.Valkey.Streams;

/// <summary>How a member of a consumer group reads, claims and tidies.</summary>
public sealed record StreamConsumerOptions
{
    /// <summary>Entries per read and per handler call.</summary>
    public int BatchSize { get; init; } = 256;

    /// <summary>An entry another member has held unacknowledged this long is claimed (its member is presumed dead).</summary>
    public TimeSpan ClaimAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often pending entries of other members are looked for.</summary>
    public TimeSpan ClaimInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest pause between reads when the stream is idle (reads back off up to it).</summary>
    public TimeSpan MaxIdleWait { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The pause after a read that did not fill a batch, so entries arriving meanwhile are handled together: at a few
    /// thousand entries a second, reading again at once hands the handler a few entries at a time, and its fixed cost
    /// per call (a script per partition, an acknowledgement) dominates. A full batch is followed by the next read at
    /// once. The price is this much delay before an entry is handled. Zero reads again at once.
    /// </summary>
    public TimeSpan FillWait { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// A member idle this long with nothing pending is removed from the group: every restart joins under a new name,
    /// and without this the group's member list would grow forever. A member with pending entries is never removed
    /// (its entries are claimed first).
    /// </summary>
    public TimeSpan ForgetIdleConsumersAfter { get; init; } = TimeSpan.FromHours(1);
}

/// <summary>
/// One member of a consumer group on a stream, the reusable half of a stream consumer: it reads new entries
/// (<c>XREADGROUP</c>), takes over entries a crashed member left pending (<c>XAUTOCLAIM</c>), forgets members that left,
/// and recreates the group when the stream was lost. What an entry means is the handler's business; the handler must
/// acknowledge what it handled (ideally in the same atomic step that applies it), or the entries stay pending and are
/// delivered again. Any number of members, in any number of processes, share the work.
/// </summary>
public sealed class StreamConsumerGroup
{
    private readonly IDatabase _database;
    private readonly RedisKey _stream;
    private readonly StreamConsumerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>One <paramref name="member"/> of consumer <paramref name="group"/> on <paramref name="stream"/>.</summary>
    public StreamConsumerGroup(IConnectionMultiplexer multiplexer, RedisKey stream, string group, string member,
        StreamConsumerOptions options, ILogger logger, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(group);
        ArgumentException.ThrowIfNullOrWhiteSpace(member);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        _database = multiplexer.GetDatabase();
        _stream = stream;
        Group = group;
        Member = member;
        _options = options;
        _logger = logger;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The consumer group this member reads in.</summary>
    public string Group { get; }
    /// <summary>This member's name in the group (unique per process).</summary>
    public string Member { get; }
    /// <summary>Entries this member claimed from members that stopped acknowledging.</summary>
    public long Claimed => Interlocked.Read(ref _claimed);
    private long _claimed;

    /// <summary>Creates the group at the start of the stream (entries appended before any member started count too).</summary>
    public async Task EnsureGroupAsync()
    {
        try
        {
            await _database.StreamCreateConsumerGroupAsync(_stream, Group, StreamPosition.Beginning, createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // Another member created it: the group's position is shared, which is the point.
        }
    }

    /// <summary>
    /// Runs until cancelled: reads and hands new entries to <paramref name="handle"/>, claims abandoned ones every
    /// claim interval, and forgets idle members. A Valkey outage pauses it; it resumes from the group's position.
    /// </summary>
    public async Task RunAsync(Func<IReadOnlyList<StreamEntry>, Task> handle, CancellationToken cancellationToken)
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
                    nextClaim = _time.GetTimestamp() + (long)(_options.ClaimInterval.TotalSeconds * _time.TimestampFrequency);
                    try
                    {
                        await ClaimAbandonedAsync(handle).ConfigureAwait(false);
                        await ForgetIdleMembersAsync().ConfigureAwait(false);
                    }
                    catch (RedisException ex) when (!IsOutageOrLostGroup(ex))
                    {
                        // An entry its handler refuses every time (a script error on it) fails every claim of it. It
                        // must not hold up the entries after it: it is tried again at the next interval, and new
                        // entries are read now.
                        _logger.LogError(ex, "Consumer {Member} of {Group} could not handle claimed entries; trying again in {Interval}.", Member, Group, _options.ClaimInterval);
                    }
                }
                var read = await ReadNewAsync(handle).ConfigureAwait(false);
                if (read > 0)
                {
                    idle = TimeSpan.FromMilliseconds(5);
                    if (read < _options.BatchSize && _options.FillWait > TimeSpan.Zero)
                    {
                        await Task.Delay(_options.FillWait, _time, cancellationToken).ConfigureAwait(false);
                    }
                    continue;
                }
                await Task.Delay(idle, _time, cancellationToken).ConfigureAwait(false);
                idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, _options.MaxIdleWait.Ticks));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (RedisException ex)
            {
                // Entries read but not handled stay pending in the group; this member (or another) picks them up.
                if (IsLostGroup(ex))
                {
                    groupReady = false; // the stream was lost (a flush, a restart without persistence): start a new group
                    _logger.LogWarning("Consumer {Member} of {Group}: the group is gone; creating it again.", Member, Group);
                }
                else if (ValkeyFailures.IsUnavailable(ex))
                {
                    _logger.LogWarning(ex, "Consumer {Member} of {Group} paused: Valkey is unavailable.", Member, Group);
                }
                else
                {
                    // A defect (a script error, a permission): loud, but the worker lives on and retries.
                    _logger.LogError(ex, "Consumer {Member} of {Group} failed; retrying.", Member, Group);
                }
                await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static bool IsLostGroup(RedisException ex) => ex.Message.Contains("NOGROUP", StringComparison.Ordinal);

    // What the read that follows meets too, and handles (a pause, or a new group).
    private static bool IsOutageOrLostGroup(RedisException ex) => IsLostGroup(ex) || ValkeyFailures.IsUnavailable(ex);

    /// <summary>Reads and handles new entries until none is left; returns how many were handled.</summary>
    public async Task<int> DrainAsync(Func<IReadOnlyList<StreamEntry>, Task> handle)
    {
        await EnsureGroupAsync().ConfigureAwait(false);
        var total = 0;
        for (var read = await ReadNewAsync(handle).ConfigureAwait(false); read > 0; read = await ReadNewAsync(handle).ConfigureAwait(false))
        {
            total += read;
        }
        return total;
    }

    /// <summary>Reads one batch of new entries and handles it; returns the number of entries read.</summary>
    public async Task<int> ReadNewAsync(Func<IReadOnlyList<StreamEntry>, Task> handle)
    {
        var entries = await ReadAsync().ConfigureAwait(false);
        if (entries.Length > 0)
        {
            await handle(entries).ConfigureAwait(false);
        }
        return entries.Length;
    }

    /// <summary>Reads a batch of new entries for this member without handling them (they stay pending until acknowledged).</summary>
    public Task<StreamEntry[]> ReadAsync() =>
        _database.StreamReadGroupAsync(_stream, Group, Member, StreamPosition.NewMessages, _options.BatchSize);

    /// <summary>Takes over and handles entries other members have left pending longer than <see cref="StreamConsumerOptions.ClaimAfter"/>.</summary>
    public async Task<int> ClaimAbandonedAsync(Func<IReadOnlyList<StreamEntry>, Task> handle)
    {
        var total = 0;
        RedisValue cursor = "0-0";
        do
        {
            var claimed = await _database.StreamAutoClaimAsync(_stream, Group, Member,
                (long)_options.ClaimAfter.TotalMilliseconds, cursor, _options.BatchSize).ConfigureAwait(false);
            var live = claimed.ClaimedEntries.Where(e => !e.IsNull).ToArray();
            if (live.Length > 0)
            {
                Interlocked.Add(ref _claimed, live.Length);
                await handle(live).ConfigureAwait(false);
            }
            // Entries trimmed from the stream while pending come back as deleted ids; XAUTOCLAIM already removed them.
            cursor = claimed.NextStartId;
            total += live.Length;
        }
        while (cursor != "0-0" && total < _options.BatchSize * 16);
        return total;
    }

    /// <summary>Removes members idle longer than <see cref="StreamConsumerOptions.ForgetIdleConsumersAfter"/> with nothing pending; returns how many.</summary>
    public async Task<int> ForgetIdleMembersAsync()
    {
        var forgotten = 0;
        foreach (var member in await _database.StreamConsumerInfoAsync(_stream, Group).ConfigureAwait(false))
        {
            if (member.Name != Member && member.PendingMessageCount == 0 && member.IdleTimeInMilliseconds >= _options.ForgetIdleConsumersAfter.TotalMilliseconds)
            {
                // XGROUP DELCONSUMER would drop pending entries with the member; there are none, checked just above.
                await _database.StreamDeleteConsumerAsync(_stream, Group, member.Name).ConfigureAwait(false);
                forgotten++;
            }
        }
        return forgotten;
    }
}
