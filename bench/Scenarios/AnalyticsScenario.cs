using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using ShopReference.Valkey;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// The analytics pipeline on the Valkey of the run (one server, or a cluster with SHOPREF_VALKEY_TOPOLOGY=Cluster,
/// where the spread over the primaries shows how the partitions share the load): (1) ingest, from the first XADD to the last event applied by two consumers
/// of the group, against appending alone (the stream's own cost) as the baseline; (2) a 7-day leaderboard read
/// through the cached view, against recomputing the window (ZUNIONSTORE over 168 hourly buckets) on every read;
/// (3) memory: an hourly bucket of 1,000 products, a week of them, a day's HyperLogLog.
/// </summary>
public sealed class AnalyticsScenario : IScenario
{
    private const int Events = 200_000;
    private const int Products = 1_000;

    public string Name => "analytics";
    public string Description => "analytics: ingest rate XADD→applied, leaderboard read p99, memory per 1,000 products";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var producer = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString + ",allowAdmin=true"); // INFO per primary
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"### {Description}");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"Ingest of {Events:N0} product.viewed events ({Products:N0} products, 50,000 visitors), batches of 1,024 per read, one apply step per partition:");
        report.AppendLine();
        report.AppendLine("| contender | events/s | seconds | vs baseline |");
        report.AppendLine("|---|---:|---:|---:|");

        var appendOnly = await AppendAllAsync(producer, "bench-append");
        report.AppendLine(CultureInfo.InvariantCulture, $"| XADD only (baseline) | {Events / appendOnly.TotalSeconds:N0} | {appendOnly.TotalSeconds:0.00} | 1.00x |");

        string? spread = null;
        foreach (var consumers in new[] { 1, 2 })
        {
            var before = await ShardSpread.SnapshotAsync(producer);
            var elapsed = await IngestAsync(servers, producer, consumers);
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| XADD → applied, {consumers} consumer(s) | {Events / elapsed.TotalSeconds:N0} | {elapsed.TotalSeconds:0.00} | {appendOnly / elapsed:0.00}x |");
            spread ??= await before.RenderSinceAsync(producer, $"Spread of the ingest with 1 consumer (appends, applies and acknowledgements) over the primaries, " +
                $"with the {AnalyticsKeys.Partitions} analytics partitions and the stream's slot");
        }
        report.AppendLine();
        report.Append(spread);

        // Leaderboard reads over a full week of buckets.
        await Keyspace.DeleteAsync(producer, AnalyticsKeys.Prefix + "*");
        var database = producer.GetDatabase();
        var now = DateTime.UtcNow;
        for (var h = 0; h < 168; h++)
        {
            foreach (var partition in Enumerable.Range(1, Products).GroupBy(p => AnalyticsKeys.PartitionOfProduct(p)))
            {
                await database.SortedSetAddAsync(AnalyticsKeys.Bucket("views", now.AddHours(-h), partition.Key),
                    [.. partition.Select(p => new SortedSetEntry(p, Random.Shared.Next(1, 1000)))]);
            }
        }
        await using var cache = new SingleFlightCache(producer, new SingleFlightOptions { Channel = "bench:analytics:filled" });
        var cached = new Leaderboards(producer, cache);
        var uncached = new Leaderboards(producer, cache);
        var measurements = new List<Measurement>();
        foreach (var concurrency in options.ConcurrencyLevels)
        {
            measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(
            [
                ("recompute the window on every read", async () => await uncached.RecomputeAsync("views", "7d", 10)),
                ("cached view (single-flight, 60 s)", async () => await cached.TopAsync("views", "7d", 10)),
            ], concurrency, options.Warmup, options.Duration));
        }
        report.AppendLine();
        report.Append(MarkdownReport.Render("7-day most-viewed top 10 over 168 buckets of 1,000 products", "recompute the window on every read", measurements));

        await cached.TopAsync("views", "7d", 10); // the view as a reader leaves it (it may have expired since the last read)
        var view = await MemoryUsageAsync(database, AnalyticsKeys.View("views", "7d"));
        var bucket = await PartitionsUsageAsync(database, p => AnalyticsKeys.Bucket("views", now, p));
        var week = 0L;
        for (var h = 0; h < 168; h++)
        {
            week += await PartitionsUsageAsync(database, p => AnalyticsKeys.Bucket("views", now.AddHours(-h), p)); // each one measured
        }
        await AppendAllAsync(producer, "bench-hll");
        await new EventConsumer(producer, "bench-drain", new EventConsumerOptions(), NullLogger.Instance).DrainAsync();
        var hll = await PartitionsUsageAsync(database, p => AnalyticsKeys.Uniques(DateOnly.FromDateTime(now), p));
        var dedupe = await PartitionsUsageAsync(database, p => AnalyticsKeys.Applied(p, AnalyticsKeys.HourId(now)));
        report.AppendLine();
        report.AppendLine("Memory (`MEMORY USAGE`):");
        report.AppendLine();
        report.AppendLine("| what | bytes |");
        report.AppendLine("|---|---:|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| one hourly bucket, {Products:N0} products (its {AnalyticsKeys.Partitions} partitions summed, as all rows below) | {bucket:N0} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| a week of hourly buckets (168, each measured), {Products:N0} products each | {week:N0} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| one day's unique visitors (HyperLogLog, 50,000 visitors) | {hll:N0} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| the cached 7-day view (top 100) | {view:N0} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| the hour's dedupe set after {Events:N0} events | {dedupe:N0} ({(double)dedupe / Events:0.0} per event) |");
        return report.ToString();
    }

    private static async Task<long> MemoryUsageAsync(IDatabase database, string key)
    {
        var usage = await database.ExecuteAsync("MEMORY", "USAGE", (RedisKey)key, "SAMPLES", "0"); // a RedisKey, so a cluster routes it to its slot
        return usage.IsNull ? 0 : (long)usage;
    }

    /// <summary>The memory of one logical key split over the partitions (a partition with no such key counts 0).</summary>
    private static async Task<long> PartitionsUsageAsync(IDatabase database, Func<int, string> key)
    {
        var total = 0L;
        foreach (var partition in AnalyticsKeys.AllPartitions) total += await MemoryUsageAsync(database, key(partition));
        return total;
    }

    private static async Task<TimeSpan> IngestAsync(TestServers servers, IConnectionMultiplexer producer, int consumers)
    {
        await Keyspace.DeleteAsync(producer, AnalyticsKeys.Prefix + "*");
        var connections = new List<ConnectionMultiplexer>();
        var group = new List<EventConsumer>();
        for (var i = 0; i < consumers; i++)
        {
            var connection = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
            connections.Add(connection);
            group.Add(new EventConsumer(connection, $"bench-{i}", new EventConsumerOptions { MaxIdleWait = TimeSpan.FromMilliseconds(2) }, NullLogger.Instance));
        }
        await group[0].EnsureGroupAsync();
        using var stop = new CancellationTokenSource();
        var running = group.Select(c => c.RunAsync(stop.Token)).ToArray();
        var started = Stopwatch.GetTimestamp();
        await AppendAllAsync(producer, $"bench-{consumers}");
        while (group.Sum(c => c.Counters.Applied) < Events)
        {
            await Task.Delay(1);
        }
        var elapsed = Stopwatch.GetElapsedTime(started);
        await stop.CancelAsync();
        await Task.WhenAll(running);
        if (group.Sum(c => c.Counters.Duplicates) != 0) throw new InvalidOperationException("duplicates in a clean run");
        foreach (var connection in connections) await connection.DisposeAsync();
        return elapsed;
    }

    private static async Task<TimeSpan> AppendAllAsync(IConnectionMultiplexer producer, string prefix)
    {
        var database = producer.GetDatabase();
        var now = DateTimeOffset.UtcNow;
        var started = Stopwatch.GetTimestamp();
        for (var offset = 0; offset < Events; offset += 1_000)
        {
            var batch = database.CreateBatch();
            var adds = Enumerable.Range(offset, 1_000).Select(i => batch.StreamAddAsync(EventStream.Key,
                new AnalyticsEvent($"{prefix}-{i}", EventTypes.ProductViewed, now, $"v{i % 50_000}", i % Products + 1).ToFields(),
                maxLength: EventPublisher.StreamMaxLength, useApproximateMaxLength: true)).ToArray();
            batch.Execute();
            await Task.WhenAll(adds);
        }
        return Stopwatch.GetElapsedTime(started);
    }
}
