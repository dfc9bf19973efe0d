using ShopReference.Valkey;
using ShopReference.Valkey.Events;
using StackExchange.Redis;

namespace ShopReference.Analytics.Counting;

/// <summary>Unique visitors (HyperLogLog: about 12 KB per day whatever the traffic, standard error 0.81 %) and per-minute counters.</summary>
public sealed class AnalyticsReads(IConnectionMultiplexer multiplexer, TimeProvider? time = null)
{
    /// <summary>The metrics kept per minute (key part → what it counts).</summary>
    public static readonly IReadOnlyDictionary<string, string> Metrics = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["views"] = "product views",
        ["cart_adds"] = "items added to carts",
        ["orders"] = "orders placed",
        ["units"] = "units sold",
    };

    public const int MaxMinutes = 360;
    public const int MaxDays = 7;

    private readonly IDatabase _database = multiplexer.GetDatabase();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Estimated unique visitors on <paramref name="day"/>, or over the <paramref name="days"/> days ending then (PFMERGE).</summary>
    public async Task<long> UniqueVisitorsAsync(DateOnly day, int days = 1)
    {
        if (days == 1)
        {
            return await _database.HyperLogLogLengthAsync(AnalyticsKeys.Uniques(day)).ConfigureAwait(false);
        }
        // The merged key is kept a minute: a week's count is asked often and changes slowly.
        var merged = AnalyticsKeys.UniquesSpan(day, days);
        var sources = Enumerable.Range(0, days).Select(d => (RedisKey)AnalyticsKeys.Uniques(day.AddDays(-d))).ToArray();
        var transaction = _database.CreateTransaction();
        _ = transaction.HyperLogLogMergeAsync(merged, sources);
        _ = transaction.KeyExpireAsync(merged, TimeSpan.FromMinutes(1));
        var count = transaction.HyperLogLogLengthAsync(merged);
        await transaction.ExecuteAsync().ConfigureAwait(false);
        return await count.ConfigureAwait(false);
    }

    /// <summary>The last <paramref name="minutes"/> minutes of a metric, oldest first, zeros where nothing happened (one MGET).</summary>
    public async Task<IReadOnlyList<(DateTime Minute, long Value)>> MinutesAsync(string metric, int minutes)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var current = new DateTime(now.Year, now.Month, now.Day, now.Hour, now.Minute, 0, DateTimeKind.Utc);
        var stamps = Enumerable.Range(0, minutes).Select(m => current.AddMinutes(m - minutes + 1)).ToArray();
        var values = await _database.StringGetAsync([.. stamps.Select(s => (RedisKey)AnalyticsKeys.Minute(metric, s))]).ConfigureAwait(false);
        return [.. stamps.Select((s, i) => (s, values[i].IsNull ? 0L : (long)values[i]))];
    }
}
