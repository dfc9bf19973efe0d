using Npgsql;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using StackExchange.Redis;

namespace ShopReference.Analytics.Data;

/// <summary>
/// The durable side of analytics in <c>analyticsdb</c>: per-hour product counts and per-day unique visitors, written
/// as idempotent upserts of absolute values (never increments), so a rollup can run twice, on two instances at once,
/// or after a crash, and the rows stay right. Counts only grow, so an upsert never lowers one: a slower instance
/// holding an older read cannot overwrite a newer one. <see cref="RebuildAsync"/> restores the leaderboards' hourly
/// buckets from these rows after Valkey lost them.
/// </summary>
public sealed class Rollups(NpgsqlDataSource dataSource, IConnectionMultiplexer multiplexer, Leaderboards leaderboards, AnalyticsReads reads,
    ILogger<Rollups> logger)
    : StartupInitializer(logger)
{
    private const long AdvisoryLock = 0x5348_4f50_414e_41; // "SHOPANA"
    private readonly IDatabase _database = multiplexer.GetDatabase();

    protected override string Work => "Creating the analytics schema";

    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"select pg_advisory_xact_lock({AdvisoryLock}); {Schema}", connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Writes every hour that changed since the last rollup, partition by partition; returns the number of distinct hours written.</summary>
    public async Task<int> RollUpAsync(CancellationToken cancellationToken)
    {
        var written = new HashSet<string>(StringComparer.Ordinal);
        var uniques = new Dictionary<DateOnly, long>();
        foreach (var partition in AnalyticsKeys.AllPartitions)
        {
            var dirtyKey = AnalyticsKeys.DirtyHours(partition);
            foreach (var hour in await _database.HashGetAllAsync(dirtyKey))
            {
                await WriteHourAsync(partition, AnalyticsKeys.ParseHour(hour.Name!), uniques, cancellationToken);
                // Clear the mark only if no event touched the hour meanwhile; otherwise the next rollup writes it again.
                var clear = _database.CreateTransaction();
                clear.AddCondition(Condition.HashEqual(dirtyKey, hour.Name, hour.Value));
                _ = clear.HashDeleteAsync(dirtyKey, hour.Name);
                await clear.ExecuteAsync();
                written.Add(hour.Name!);
            }
        }
        return written.Count;
    }

    /// <summary>
    /// Upserts one partition's counts of an hour (partitions hold disjoint products, so each row has one writer) and
    /// the day's unique visitors (all partitions summed, counted once per rollup).
    /// </summary>
    private async Task WriteHourAsync(int partition, DateTime at, Dictionary<DateOnly, long> uniques, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);
        foreach (var board in Boards.Names.Values)
        {
            var rows = await _database.SortedSetRangeByRankWithScoresAsync(AnalyticsKeys.Bucket(board, at, partition));
            if (rows.Length == 0) continue;
            batch.BatchCommands.Add(new NpgsqlBatchCommand("""
                insert into product_hourly (hour, board, product_id, count)
                select $1, $2, * from unnest($3::bigint[], $4::bigint[])
                on conflict (hour, board, product_id) do update set count = excluded.count
                where product_hourly.count < excluded.count
                """)
            {
                Parameters =
                {
                    new() { Value = at }, new() { Value = board },
                    new() { Value = rows.Select(r => long.Parse((string)r.Element!, System.Globalization.CultureInfo.InvariantCulture)).ToArray() },
                    new() { Value = rows.Select(r => (long)r.Score).ToArray() },
                },
            });
        }
        var day = DateOnly.FromDateTime(at);
        if (!uniques.TryGetValue(day, out var visitors))
        {
            uniques[day] = visitors = await reads.UniqueVisitorsAsync(day);
        }
        batch.BatchCommands.Add(new NpgsqlBatchCommand("""
            insert into daily_uniques (day, visitors) values ($1, $2)
            on conflict (day) do update set visitors = greatest(daily_uniques.visitors, excluded.visitors)
            """)
        {
            Parameters = { new() { Value = day }, new() { Value = visitors } },
        });
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Restores the hourly buckets of the last 8 days from PostgreSQL. Each bucket becomes the larger of what Valkey holds
    /// and what was rolled up (<c>ZUNIONSTORE … AGGREGATE MAX</c>), so a rebuild never lowers a live count.
    /// Returns the number of hourly buckets restored (an hour of a board, whatever the number of partitions it spans).
    /// </summary>
    public async Task<int> RebuildAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select hour, board, product_id, count from product_hourly
            where hour >= now() - interval '8 days' order by hour, board
            """);
        var buckets = new Dictionary<(DateTime Hour, string Board, int Partition), List<SortedSetEntry>>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var product = reader.GetInt64(2);
                var key = (reader.GetFieldValue<DateTime>(0), reader.GetString(1), AnalyticsKeys.PartitionOfProduct(product));
                if (!buckets.TryGetValue(key, out var rows)) buckets[key] = rows = [];
                rows.Add(new SortedSetEntry(product, reader.GetInt64(3)));
            }
        }
        foreach (var ((hour, board, partition), rows) in buckets)
        {
            var bucket = AnalyticsKeys.Bucket(board, hour, partition);
            var scratch = bucket + ":rebuild";
            var write = _database.CreateTransaction();
            _ = write.KeyDeleteAsync(scratch);
            _ = write.SortedSetAddAsync(scratch, [.. rows]);
            _ = write.SortedSetCombineAndStoreAsync(SetOperation.Union, bucket, [bucket, scratch], aggregate: Aggregate.Max);
            _ = write.KeyDeleteAsync(scratch);
            _ = write.KeyExpireAsync(bucket, hour + EventConsumer.BucketTtl);
            await write.ExecuteAsync();
        }
        await leaderboards.InvalidateAsync();
        return buckets.Keys.Select(k => (k.Hour, k.Board)).Distinct().Count();
    }

    private const string Schema = """
        create table if not exists product_hourly (
            hour timestamptz not null,
            board text not null,
            product_id bigint not null,
            count bigint not null check (count >= 0),
            primary key (hour, board, product_id)
        );
        create table if not exists daily_uniques (
            day date primary key,
            visitors bigint not null
        );
        """;
}
