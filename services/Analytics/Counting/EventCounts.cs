using ShopReference.Contracts.Events;

namespace ShopReference.Analytics.Counting;

/// <summary>
/// What an event counts, and where: the analytics rules in one place. An event splits into parts, one per partition it
/// touches. Its product counts go to the partition of each product, and its per-minute counters to the partition of
/// its (first) product: those parts are applied once, guarded by the partition's dedupe set. Its visitor goes into the
/// HyperLogLog of the visitor's partition with no dedupe mark, because adding a visitor twice changes nothing. Each
/// part marks the hour dirty in its partition, so the rollup finds every changed bucket.
/// </summary>
internal static class EventCounts
{
    /// <summary>Hour buckets outlive the longest window (7 days) by a day; the dedupe set outlives the oldest event accepted.</summary>
    public static readonly TimeSpan BucketTtl = TimeSpan.FromDays(8);
    public static readonly TimeSpan DedupeTtl = EventRules.MaxAge + TimeSpan.FromHours(2);
    public static readonly TimeSpan MinuteTtl = TimeSpan.FromHours(6);

    /// <summary>Adds the parts of a valid event to the batches of the partitions it touches.</summary>
    public static void AddTo(Func<int, PartitionBatch> batchOf, int eventIndex, AnalyticsEvent e)
    {
        var at = e.Timestamp.UtcDateTime;
        var hour = AnalyticsKeys.HourId(at);
        var minute = AnalyticsKeys.MinuteId(at);
        var home = AnalyticsKeys.PartitionOfProduct(e.ProductId ?? e.Lines![0].ProductId);
        var counted = new Dictionary<int, List<CountOperation>> { [home] = [] };
        List<CountOperation> In(int partition) => counted.TryGetValue(partition, out var list) ? list : counted[partition] = [];
        CountOperation PerMinute(string metric, long by) => CountOperation.Increment(AnalyticsKeys.Minute(metric, minute, home), MinuteTtl, by);

        switch (e.Type)
        {
            case EventTypes.ProductViewed:
                In(home).Add(CountOperation.SortedSetIncrement(AnalyticsKeys.Bucket("views", hour, home), BucketTtl, e.ProductId!.Value, 1));
                In(home).Add(PerMinute("views", 1));
                break;
            case EventTypes.CartItemAdded:
                In(home).Add(PerMinute("cart_adds", e.Quantity!.Value));
                break;
            case EventTypes.OrderPlaced:
                foreach (var line in e.Lines!)
                {
                    var partition = AnalyticsKeys.PartitionOfProduct(line.ProductId);
                    In(partition).Add(CountOperation.SortedSetIncrement(AnalyticsKeys.Bucket("sold", hour, partition), BucketTtl, line.ProductId, line.Quantity));
                }
                In(home).Add(PerMinute("orders", 1));
                In(home).Add(PerMinute("units", e.Lines!.Sum(l => (long)l.Quantity)));
                break;
        }
        // The dedupe member names the type too: an event of one type can never pass for, or hide, one of another.
        var member = $"{e.Type}|{e.Id}";
        foreach (var (partition, operations) in counted)
        {
            operations.Add(CountOperation.HashIncrement(AnalyticsKeys.DirtyHours(partition), hour, 1));
            batchOf(partition).Add(eventIndex, AnalyticsKeys.Applied(partition, hour), DedupeTtl, member, operations);
        }
        if (e.VisitorId is { } visitor)
        {
            var partition = AnalyticsKeys.PartitionOf(visitor);
            var uniques = AnalyticsKeys.Uniques(AnalyticsKeys.DayId(DateOnly.FromDateTime(at)), partition);
            batchOf(partition).AddIdempotent(eventIndex,
                [CountOperation.HyperLogLogAdd(uniques, BucketTtl, visitor), CountOperation.HashIncrement(AnalyticsKeys.DirtyHours(partition), hour, 1)]);
        }
    }
}
