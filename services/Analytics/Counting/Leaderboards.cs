using System.Globalization;
using System.Text.Json;
using ShopReference.Valkey.Caching;
using ShopReference.Valkey.Scripting;
using ShopReference.Valkey;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

namespace ShopReference.Analytics.Counting;

/// <summary>One leaderboard row: a product and its count in the window.</summary>
public sealed record LeaderboardEntry(long ProductId, long Count);

/// <summary>The boards and windows the API offers.</summary>
public static class Boards
{
    /// <summary>Board name in the API → key part.</summary>
    public static readonly IReadOnlyDictionary<string, string> Names = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["most-viewed"] = "views",
        ["best-selling"] = "sold",
    };

    /// <summary>Window → its length in hours (it slides: see <see cref="Leaderboards"/>).</summary>
    public static readonly IReadOnlyDictionary<string, int> Windows = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["1h"] = 1,
        ["24h"] = 24,
        ["7d"] = 168,
    };

    /// <summary>How long a window's computed view is served before it is recomputed.</summary>
    public static TimeSpan ViewTtl(string window) => window switch
    {
        "1h" => TimeSpan.FromSeconds(5),
        "24h" => TimeSpan.FromSeconds(30),
        _ => TimeSpan.FromSeconds(60),
    };

    /// <summary>The most rows a view keeps; <c>top</c> is 1 to this.</summary>
    public const int MaxTop = 100;
}

/// <summary>
/// Windowed leaderboards. A window slides: it is the weighted union of its hourly buckets (<c>ZUNIONSTORE … WEIGHTS</c>
/// of up to 169 sorted sets in each partition), with the bucket partly outside the window weighted by the part still
/// inside; the partitions' tops are merged here. This is the expensive aggregate. Its result is cached under one key and recomputed through <see cref="SingleFlightCache"/>,
/// so when it expires under any number of readers on any number of instances it is recomputed once. Rows are ordered
/// by count (descending), then product id (ascending): equal counts always come out in the same order.
/// </summary>
public sealed class Leaderboards(IConnectionMultiplexer multiplexer, SingleFlightCache cache, TimeProvider? time = null)
{
    private readonly IDatabase _database = multiplexer.GetDatabase();
    private readonly ValkeyScript _window = ValkeyScript.Load<Leaderboards>("window");
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private long _recomputations;

    /// <summary>How many times this instance computed a window (the herd test counts these across instances).</summary>
    public long Recomputations => Interlocked.Read(ref _recomputations);

    public event Action? Recomputed;

    /// <param name="board">A key part from <see cref="Boards.Names"/> ("views", "sold").</param>
    /// <param name="window">A key of <see cref="Boards.Windows"/>.</param>
    public async Task<IReadOnlyList<LeaderboardEntry>> TopAsync(string board, string window, int top, CancellationToken cancellationToken = default)
    {
        var read = await cache.GetOrLoadAsync(AnalyticsKeys.View(board, window), _ => ComputeAsync(board, window),
            new CacheEntryOptions { TimeToLive = Boards.ViewTtl(window), Jitter = 0, NegativeTimeToLive = Boards.ViewTtl(window) },
            cancellationToken).ConfigureAwait(false);
        var rows = read.Payload is null ? [] : JsonSerializer.Deserialize<long[][]>(read.Payload)!;
        return [.. rows.Take(top).Select(r => new LeaderboardEntry(r[0], r[1]))];
    }

    /// <summary>Computes the window without the cache: what every read would cost if the view were not cached.</summary>
    public async Task<IReadOnlyList<LeaderboardEntry>> RecomputeAsync(string board, string window, int top)
    {
        var rows = JsonSerializer.Deserialize<long[][]>((await ComputeAsync(board, window).ConfigureAwait(false)).Payload!)!;
        return [.. rows.Take(top).Select(r => new LeaderboardEntry(r[0], r[1]))];
    }

    /// <summary>Drops the cached views, so the next read recomputes (after a rebuild from PostgreSQL).</summary>
    public async Task InvalidateAsync()
    {
        foreach (var board in Boards.Names.Values)
        {
            foreach (var window in Boards.Windows.Keys)
            {
                await cache.RemoveAsync(AnalyticsKeys.View(board, window)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Product → count in one hourly bucket of a board, all partitions merged (tests, tools).</summary>
    public static async Task<Dictionary<long, long>> ReadHourAsync(IDatabase database, string board, DateTime hour)
    {
        var reads = AnalyticsKeys.AllPartitions.Select(p => database.SortedSetRangeByRankWithScoresAsync(AnalyticsKeys.Bucket(board, hour, p)));
        return (await Task.WhenAll(reads).ConfigureAwait(false)).SelectMany(rows => rows)
            .ToDictionary(r => (long)r.Element, r => (long)r.Score);
    }

    private async Task<OriginValue> ComputeAsync(string board, string window)
    {
        Interlocked.Increment(ref _recomputations);
        Recomputed?.Invoke();
        var now = _time.GetUtcNow().UtcDateTime;
        var hour = new DateTime(now.Year, now.Month, now.Day, now.Hour, 0, 0, DateTimeKind.Utc);
        // A sliding window over hourly buckets: the current (partial) hour and the hours before it count whole; the
        // bucket that has partly slid out counts for the part still inside, as a sliding-window counter estimates.
        var hours = Boards.Windows[window];
        var outside = (now - hour).TotalHours;
        RedisValue[] values = [Boards.MaxTop, .. Enumerable.Repeat<RedisValue>(1, hours), Math.Round(1 - outside, 4)];
        // Each partition computes its own top N (with every member tied with its N-th), on whichever shard holds it, all
        // at once. A product lives in one partition only, so the global top N is among the partitions' top N: merging
        // them in order and cutting at N is exact, ties included.
        var partitions = await Task.WhenAll(AnalyticsKeys.AllPartitions.Select(async p =>
        {
            RedisKey[] keys =
            [
                AnalyticsKeys.Scratch(p),
                .. Enumerable.Range(0, hours + 1).Select(h => (RedisKey)AnalyticsKeys.Bucket(board, hour.AddHours(-h), p)),
            ];
            return (RedisResult[])(await _window.EvaluateAsync(_database, keys, values).ConfigureAwait(false))!;
        })).ConfigureAwait(false);
        var rows = new List<long[]>();
        foreach (var flat in partitions)
        {
            for (var i = 0; i < flat.Length; i += 2)
            {
                rows.Add([long.Parse((string)flat[i]!, CultureInfo.InvariantCulture), (long)Math.Round((double)flat[i + 1])]);
            }
        }
        var ordered = rows.OrderByDescending(r => r[1]).ThenBy(r => r[0]).Take(Boards.MaxTop).ToArray();
        // The version is the computation time: a slower, older computation can never overwrite a newer one.
        return new OriginValue(JsonSerializer.SerializeToUtf8Bytes(ordered), _time.GetUtcNow().ToUnixTimeMilliseconds());
    }
}
