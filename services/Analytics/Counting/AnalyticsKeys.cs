using System.Globalization;
using System.IO.Hashing;
using System.Text;
using ShopReference.Valkey;
using ShopReference.Contracts.Events;

namespace ShopReference.Analytics.Counting;

/// <summary>
/// Every analytics key, from one place (docs/keys.md). The counts are split into <see cref="Partitions"/> partitions,
/// each with its own hash tag (<c>{shop.p0.22}</c> … <c>{shop.p15.42}</c>), so in a cluster they spread over the shards
/// instead of loading one slot. A product's hourly buckets live in the partition of its id; a visitor's unique count
/// and the per-minute counters in the partition of the visitor (or of the event when it has none). Partitions never
/// share a product or a visitor, so reads merge them exactly: counts add, and a window's top N is within the union of
/// the partitions' top N. The stream, its dead letters and the cached views keep the tag <c>{shop}</c>.
/// </summary>
public static class AnalyticsKeys
{
    public const string Tag = EventStream.Tag;
    public const string Prefix = "analytics:";

    /// <summary>
    /// Fixed, not configured: every instance, tool and test must agree, and changing it would move existing counts to
    /// other keys (a rebuild from PostgreSQL restores the buckets, not the uniques or the minute counters).
    /// 16 tags spread over any number of shards up to 16; a larger cluster needs more.
    /// </summary>
    public const int Partitions = 16;

    /// <summary>The dead-letter stream: entries that failed validation, with the reason; bounded.</summary>
    public static readonly string DeadLetters = KeySchema.TaggedKey("analytics", "dead", Tag);

    /// <summary>
    /// The number after each partition's name puts its slot in the partition's sixteenth of the 16,384 slots (partition 0
    /// in slots 0–1023, partition 1 in 1024–2047, …; a test checks it). A cluster splits its slots into equal contiguous
    /// ranges, so every shard gets its share of partitions: 5, 5 and 6 on three shards. Plain <c>shop.p0</c> …
    /// <c>shop.p15</c> would put 10 of the 16 on the first of three shards.
    /// </summary>
    private static readonly int[] SlotSalt = [22, 21, 11, 12, 41, 42, 1, 2, 3, 0, 2, 1, 10, 13, 41, 42];

    /// <summary>The hash tag of a partition.</summary>
    public static string PartitionTag(int partition) => $"{Tag}.p{partition}.{SlotSalt[partition]}";

    /// <summary>The partition of a product's counts: ids are dense, so the remainder spreads them evenly.</summary>
    public static int PartitionOfProduct(long productId) => (int)((ulong)productId % Partitions);

    /// <summary>The partition of a visitor (or of an event without one): a stable hash, the same in every process.</summary>
    public static int PartitionOf(string value) => (int)(XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(value)) % Partitions);

    /// <summary>Events of a partition applied in an hour (<c>{type}|{id}</c>): the dedupe set.</summary>
    public static string Applied(int partition, string hourId) => KeySchema.TaggedKey("analytics", "applied", PartitionTag(partition), hourId);

    /// <summary>Hours whose buckets changed in a partition since the last rollup to PostgreSQL (field hour → change count).</summary>
    public static string DirtyHours(int partition) => KeySchema.TaggedKey("analytics", "dirty", PartitionTag(partition));

    /// <summary>The hourly bucket of a leaderboard for the products of one partition: product → count.</summary>
    public static string Bucket(string board, DateTime hour, int partition) => Bucket(board, HourId(hour), partition);

    public static string Bucket(string board, string hourId, int partition) =>
        KeySchema.TaggedKey("analytics", "lb", PartitionTag(partition), $"{board}:{hourId}");

    /// <summary>The bucket that holds <paramref name="productId"/>'s count.</summary>
    public static string BucketOf(string board, DateTime hour, long productId) => Bucket(board, hour, PartitionOfProduct(productId));

    /// <summary>A key a window computation unions into and drops, in the partition it reads.</summary>
    public static string Scratch(int partition) => KeySchema.TaggedKey("analytics", "scratch", PartitionTag(partition), EventRules.NewId());

    /// <summary>The cached windowed view of a leaderboard (all partitions merged), kept by the single-flight cache.</summary>
    public static string View(string board, string window) => KeySchema.TaggedKey("analytics", "view", Tag, $"{board}:{window}");

    /// <summary>The HyperLogLog of a partition's visitors on a day.</summary>
    public static string Uniques(DateOnly day, int partition) => Uniques(DayId(day), partition);

    public static string Uniques(string dayId, int partition) => KeySchema.TaggedKey("analytics", "uniques", PartitionTag(partition), dayId);

    /// <summary>A partition's share of a metric in a minute.</summary>
    public static string Minute(string metric, DateTime minute, int partition) => Minute(metric, MinuteId(minute), partition);

    public static string Minute(string metric, string minuteId, int partition) =>
        KeySchema.TaggedKey("analytics", "ts", PartitionTag(partition), $"{metric}:{minuteId}");

    public static IEnumerable<int> AllPartitions => Enumerable.Range(0, Partitions);

    public static string HourId(DateTime utc) => utc.ToString("yyyyMMddHH", CultureInfo.InvariantCulture);
    public static string DayId(DateOnly day) => day.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
    public static string MinuteId(DateTime utc) => utc.ToString("yyyyMMddHHmm", CultureInfo.InvariantCulture);

    public static DateTime ParseHour(string hourId) =>
        DateTime.ParseExact(hourId, "yyyyMMddHH", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
}
