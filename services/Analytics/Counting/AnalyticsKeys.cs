using System.Globalization;

using ShopReference.Valkey;
using ShopReference.Valkey.Events;

namespace ShopReference.Analytics.Counting;

/// <summary>
/// Every analytics key, from one place (docs/keys.md). All of them carry the hash tag <c>{shop}</c>: one apply script
/// touches the stream, the dedupe set, buckets, HyperLogLogs and counters of many products at once, and in a cluster
/// a script may only touch keys of one slot. A multi-tenant deployment would tag by tenant instead.
/// </summary>
public static class AnalyticsKeys
{
    public const string Tag = EventStream.Tag;
    public const string Prefix = "analytics:";

    /// <summary>The dead-letter stream: entries that failed validation, with the reason; bounded.</summary>
    public static readonly string DeadLetters = KeySchema.TaggedKey("analytics", "dead", Tag);

    /// <summary>Hours whose buckets changed since the last rollup to PostgreSQL (field hour → change count).</summary>
    public static readonly string DirtyHours = KeySchema.TaggedKey("analytics", "dirty", Tag);

    /// <summary>The hourly bucket of a leaderboard: product → count.</summary>
    public static string Bucket(string board, DateTime hour) => KeySchema.TaggedKey("analytics", "lb", Tag, $"{board}:{HourId(hour)}");

    /// <summary>The cached windowed view of a leaderboard, kept by the single-flight cache.</summary>
    public static string View(string board, string window) => KeySchema.TaggedKey("analytics", "view", Tag, $"{board}:{window}");

    public static string Uniques(DateOnly day) => KeySchema.TaggedKey("analytics", "uniques", Tag, DayId(day));

    /// <summary>The merged HyperLogLog of the <paramref name="days"/> days ending at <paramref name="day"/>.</summary>
    public static string UniquesSpan(DateOnly day, int days) => KeySchema.TaggedKey("analytics", "uniques", Tag, $"{DayId(day)}:{days}d");

    public static string Minute(string metric, DateTime minute) => KeySchema.TaggedKey("analytics", "ts", Tag, $"{metric}:{MinuteId(minute)}");

    public static string HourId(DateTime utc) => utc.ToString("yyyyMMddHH", CultureInfo.InvariantCulture);
    public static string DayId(DateOnly day) => day.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
    public static string MinuteId(DateTime utc) => utc.ToString("yyyyMMddHHmm", CultureInfo.InvariantCulture);

    public static DateTime ParseHour(string hourId) =>
        DateTime.ParseExact(hourId, "yyyyMMddHH", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
}
