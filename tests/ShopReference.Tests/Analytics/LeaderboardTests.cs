using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.Analytics.Data;
using ShopReference.Tests.Infrastructure;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Tests.Analytics;

/// <summary>Windowed leaderboards: one recomputation per expiry across instances, deterministic ties, and the round trip through PostgreSQL.</summary>
[Collection(ServersCollection.Name)]
public sealed class LeaderboardTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_window_that_expires_under_200_readers_on_two_instances_is_recomputed_once()
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(first);
        await SeedBucketsAsync(first);
        var channel = "test:analytics:" + Guid.NewGuid().ToString("N");
        await using var cacheA = new SingleFlightCache(first, new SingleFlightOptions { Channel = channel });
        await using var cacheB = new SingleFlightCache(second, new SingleFlightOptions { Channel = channel });
        Leaderboards[] instances = [new(first, cacheA), new(second, cacheB)];

        for (var expiry = 1; expiry <= 2; expiry++)
        {
            await first.GetDatabase().KeyDeleteAsync(AnalyticsKeys.View("views", "7d")); // the cached view expires
            using var start = new ManualResetEventSlim();
            var readers = Enumerable.Range(0, 200).Select(i => Task.Run(async () =>
            {
                start.Wait();
                return await instances[i % 2].TopAsync("views", "7d", 10);
            })).ToArray();
            start.Set();
            var answers = await Task.WhenAll(readers);

            Assert.Equal(expiry, instances.Sum(l => l.Recomputations));
            Assert.All(answers, a => Assert.Equal(answers[0], a));
        }
    }

    [Fact]
    public async Task Equal_counts_are_ordered_by_product_id_and_the_window_sums_its_hours()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        await SeedBucketsAsync(connection);
        await using var cache = new SingleFlightCache(connection, new SingleFlightOptions { Channel = "test:analytics:" + Guid.NewGuid().ToString("N") });
        var leaderboards = new Leaderboards(connection, cache);

        var week = await leaderboards.TopAsync("views", "7d", 5, Ct);
        var hour = await leaderboards.TopAsync("views", "1h", 3, Ct);

        // 7d: product 50 has 100 (this hour) + 100 (three days ago); 10..13 tie at 40 and come out by id.
        Assert.Equal([new(50, 200), new(10, 40), new(11, 40), new(12, 40), new(13, 40)], week);
        Assert.Equal([new(50, 100), new(10, 20), new(11, 20)], hour);
    }

    [Fact]
    public async Task A_window_slides_the_hour_partly_outside_it_counts_for_the_part_still_inside()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var now = new DateTimeOffset(2026, 11, 26, 10, 15, 0, TimeSpan.Zero);
        var database = connection.GetDatabase();
        await database.SortedSetAddAsync(AnalyticsKeys.BucketOf("views", now.UtcDateTime, 8), [new(8, 10)]);
        await database.SortedSetAddAsync(AnalyticsKeys.BucketOf("views", now.UtcDateTime.AddHours(-1), 7), [new(7, 100)]);
        await database.SortedSetAddAsync(AnalyticsKeys.BucketOf("views", now.UtcDateTime.AddHours(-1), 8), [new(8, 4)]);
        await database.SortedSetAddAsync(AnalyticsKeys.BucketOf("views", now.UtcDateTime.AddHours(-2), 9), [new(9, 1000)]); // outside 1h
        await using var cache = new SingleFlightCache(connection, new SingleFlightOptions { Channel = "test:analytics:" + Guid.NewGuid().ToString("N") });

        var hour = await new Leaderboards(connection, cache, new FixedClock(now)).RecomputeAsync("views", "1h", 10);

        // 10:15: the 10:00 bucket whole, and three quarters of the 09:00 bucket.
        Assert.Equal([new(7, 75), new(8, 13)], hour);
    }

    [Fact]
    public async Task A_rollup_is_idempotent_and_a_rebuild_restores_lost_buckets_from_postgres()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        await using var dataSource = NpgsqlDataSource.Create(await fixture.Postgres.CreateDatabaseAsync("analytics"));
        await using var cache = new SingleFlightCache(connection, new SingleFlightOptions { Channel = "test:analytics:" + Guid.NewGuid().ToString("N") });
        var leaderboards = new Leaderboards(connection, cache);
        var rollups = new Rollups(dataSource, connection, leaderboards, new AnalyticsReads(connection), NullLogger<Rollups>.Instance);
        await rollups.InitializeAsync(Ct);
        await AnalyticsKit.AppendAsync(connection, AnalyticsKit.Views(1_000, products: 7));
        await AnalyticsKit.Consumer(connection, "c").DrainAsync();
        var before = await leaderboards.TopAsync("views", "24h", 10, Ct);

        Assert.Equal(1, await rollups.RollUpAsync(Ct));
        Assert.Equal(0, await rollups.RollUpAsync(Ct)); // nothing changed since: nothing to write
        var rows = await RowsAsync(dataSource);
        Assert.Equal(1_000, rows.Values.Sum());
        Assert.Equal(await AnalyticsKit.BucketAsync(connection, "views"), rows);

        await AnalyticsKit.ResetAsync(connection); // Valkey lost everything
        Assert.Equal(1, await rollups.RebuildAsync(Ct));

        Assert.Equal(rows, await AnalyticsKit.BucketAsync(connection, "views"));
        Assert.Equal(before, await leaderboards.TopAsync("views", "24h", 10, Ct));
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    // This hour: product 50 x100, products 10..13 x20. Three days ago: product 50 x100, products 10..13 x20.
    private static async Task SeedBucketsAsync(IConnectionMultiplexer connection)
    {
        var database = connection.GetDatabase();
        foreach (var hour in new[] { DateTime.UtcNow, DateTime.UtcNow.AddDays(-3) })
        {
            SortedSetEntry[] rows = [new(50, 100), .. Enumerable.Range(10, 4).Select(p => new SortedSetEntry(p, 20)),
                .. Enumerable.Range(1000, 500).Select(p => new SortedSetEntry(p, 1))];
            foreach (var row in rows) await database.SortedSetAddAsync(AnalyticsKeys.BucketOf("views", hour, (long)row.Element), [row]);
        }
    }

    private async Task<Dictionary<long, long>> RowsAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("select product_id, count from product_hourly where board = 'views'");
        await using var reader = await command.ExecuteReaderAsync(Ct);
        var rows = new Dictionary<long, long>();
        while (await reader.ReadAsync(Ct))
        {
            rows[reader.GetInt64(0)] = reader.GetInt64(1);
        }
        return rows;
    }
}
