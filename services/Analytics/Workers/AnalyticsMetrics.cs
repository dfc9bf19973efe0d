using System.Diagnostics.Metrics;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;

namespace ShopReference.Analytics.Workers;

/// <summary>
/// The <c>ShopReference.Analytics</c> meter: events applied, duplicates skipped, entries dead-lettered and claimed from
/// crashed consumers (this instance's consumer), the group's lag and pending entries (sampled from <c>XINFO GROUPS</c>),
/// window recomputations, and rollups.
/// </summary>
public sealed class AnalyticsMetrics
{
    public const string MeterName = "ShopReference.Analytics";
    private readonly Counter<long> _rollups;
    private long _lag = -1;
    private long _pending;

    public AnalyticsMetrics(IMeterFactory meterFactory, EventConsumer consumer, Leaderboards leaderboards)
    {
        var meter = meterFactory.Create(MeterName);
        var counters = consumer.Counters;
        meter.CreateObservableCounter("shopreference.analytics.events.applied", () => counters.Applied, "{event}", "Events counted (each exactly once).");
        meter.CreateObservableCounter("shopreference.analytics.events.duplicates", () => counters.Duplicates, "{event}", "Redelivered or re-published events skipped by their id.");
        meter.CreateObservableCounter("shopreference.analytics.events.deadlettered", () => counters.DeadLettered, "{event}", "Invalid entries moved to the dead-letter stream.");
        meter.CreateObservableCounter("shopreference.analytics.events.claimed", () => counters.Claimed, "{event}", "Entries taken over from a consumer that stopped.");
        meter.CreateObservableGauge("shopreference.analytics.consumer.lag", () => Interlocked.Read(ref _lag), "{event}", "Entries in the stream the group has not read yet.");
        meter.CreateObservableGauge("shopreference.analytics.consumer.pending", () => Interlocked.Read(ref _pending), "{event}", "Entries read but not yet acknowledged.");
        meter.CreateObservableCounter("shopreference.analytics.aggregate.recomputations", () => leaderboards.Recomputations, "{computation}", "Windowed leaderboards recomputed (ZUNIONSTORE over hourly buckets).");
        _rollups = meter.CreateCounter<long>("shopreference.analytics.rollup.hours", "{hour}", "Hours written to PostgreSQL by the rollup.");
    }

    public long Lag => Interlocked.Read(ref _lag);
    public long Pending => Interlocked.Read(ref _pending);

    public void Sampled(long lag, long pending)
    {
        Interlocked.Exchange(ref _lag, lag);
        Interlocked.Exchange(ref _pending, pending);
    }

    public void RolledUp(int hours) => _rollups.Add(hours);
}
