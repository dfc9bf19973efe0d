using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using ShopReference.Valkey;
using StackExchange.Redis;

namespace ShopReference.Contracts.Events;

/// <summary>
/// Publishes analytics events: one <c>XADD … MAXLEN ~</c> each, and never an exception for an outage. Analytics must not
/// fail a purchase: when Valkey is unreachable the event is dropped at once (no wait for a reconnect), counted, and
/// logged at most once per interval with the number dropped since. A request path hands its events to
/// <see cref="EventQueue"/>, which calls this off the request; a caller that needs the answer awaits it directly.
/// </summary>
public sealed class EventPublisher
{
    /// <summary>The stream's approximate bound: old entries are trimmed, so an outage of consumers cannot fill memory.</summary>
    public const int StreamMaxLength = 1_000_000;

    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly IDatabase _database;
    private readonly ILogger _logger;
    private readonly Counter<long> _published;
    private readonly Counter<long> _dropped;
    private long _droppedSinceLog;
    private long _lastLogTicks = -100_000; // so the first drop is logged at once
    private long _droppedTotal;

    public EventPublisher(IConnectionMultiplexer multiplexer, IMeterFactory meterFactory, ILogger<EventPublisher> logger)
    {
        _multiplexer = multiplexer;
        _database = multiplexer.GetDatabase();
        _logger = logger;
        var meter = meterFactory.Create(MeterName);
        _published = meter.CreateCounter<long>("shopreference.analytics.events.published", "{event}", "Events appended to the analytics stream.");
        _dropped = meter.CreateCounter<long>("shopreference.analytics.events.dropped", "{event}", "Events dropped because Valkey could not take them.");
    }

    /// <summary>Every service that publishes reports its counts on this meter.</summary>
    public const string MeterName = "ShopReference.Analytics.Publishing";

    public long Dropped => Interlocked.Read(ref _droppedTotal);

    /// <summary>
    /// Appends the event; false when it was dropped because Valkey is unavailable (<see cref="ShopReference.Valkey.Resilience.ValkeyFailures"/>).
    /// Any other refusal (a permission, a wrong type) is a defect and throws.
    /// </summary>
    public async Task<bool> PublishAsync(AnalyticsEvent analyticsEvent)
    {
        var type = new KeyValuePair<string, object?>("type", analyticsEvent.Type);
        if (!_multiplexer.IsConnected)
        {
            Drop(type, null); // do not queue behind a reconnect: that is what would slow the caller down
            return false;
        }
        try
        {
            await AppendAsync(analyticsEvent).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ShopReference.Valkey.Resilience.ValkeyFailures.IsUnavailable(ex))
        {
            Drop(type, ex);
            return false;
        }
    }

    /// <summary>
    /// Appends the event or throws: for a caller that keeps the event until it is in the stream (the outbox relay), so a
    /// failure there is a delay, not a loss, and is not counted as dropped.
    /// </summary>
    public async Task AppendAsync(AnalyticsEvent analyticsEvent)
    {
        await _database.StreamAddAsync(EventStream.Key, analyticsEvent.ToFields(), maxLength: StreamMaxLength, useApproximateMaxLength: true).ConfigureAwait(false);
        _published.Add(1, new KeyValuePair<string, object?>("type", analyticsEvent.Type));
    }

    /// <summary>Counts an event <see cref="EventQueue"/> could not take (full because Valkey fell behind, or closed at shutdown).</summary>
    internal void DropQueued(AnalyticsEvent analyticsEvent) =>
        Drop(new KeyValuePair<string, object?>("type", analyticsEvent.Type), null);

    private void Drop(KeyValuePair<string, object?> type, Exception? error)
    {
        _dropped.Add(1, type);
        Interlocked.Increment(ref _droppedTotal);
        var pending = Interlocked.Increment(ref _droppedSinceLog);
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastLogTicks);
        if (now - last >= LogInterval.TotalMilliseconds && Interlocked.CompareExchange(ref _lastLogTicks, now, last) == last)
        {
            Interlocked.Add(ref _droppedSinceLog, -pending);
            _logger.LogWarning(error, "Dropped {Count} analytics event(s): Valkey is unreachable or behind. The caller's request went on.", pending);
        }
    }
}
