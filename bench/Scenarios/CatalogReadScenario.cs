using Npgsql;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// The catalog's read path on a warm cache: a cache hit through <see cref="SingleFlightCache"/> (HMGET and JSON
/// deserialization) against the raw Valkey GET floor (baseline) and against reading the same row from PostgreSQL.
/// </summary>
public sealed class CatalogReadScenario : IScenario
{
    private const int Products = 1_000;
    private const string Baseline = "raw Valkey GET (floor)";

    public string Name => "catalog-read";
    public string Description => "cache hit vs raw Valkey GET vs PostgreSQL primary-key read, same product";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
        var db = multiplexer.GetDatabase();
        await using var cache = new SingleFlightCache(multiplexer, new SingleFlightOptions { Channel = "bench:filled" });
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(await servers.Postgres.CreateDatabaseAsync("bench_catalog")) { MaxPoolSize = 64 }.ConnectionString);
        await SeedAsync(dataSource, db, cache);
        var entry = new CacheEntryOptions { TimeToLive = TimeSpan.FromHours(1) };

        var measurements = new List<Measurement>();
        foreach (var concurrency in options.ConcurrencyLevels)
        {
            measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(
            [
                (Baseline, async () => BenchProduct.FromJson((byte[])(await db.StringGetAsync($"bench:raw:{Random.Shared.Next(Products)}"))!)),
                ("cache hit (SingleFlightCache + JSON)", async () =>
                {
                    var read = await cache.GetOrLoadAsync($"bench:product:{{{Random.Shared.Next(Products)}}}", _ => throw new InvalidOperationException("miss"), entry);
                    BenchProduct.FromJson(read.Payload);
                }),
                ("PostgreSQL primary-key read", async () =>
                {
                    await using var command = dataSource.CreateCommand("select id, sku, name, description, category, price, stock, version from bench_product where id = $1");
                    command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = Random.Shared.Next(Products) });
                    await using var reader = await command.ExecuteReaderAsync();
                    await reader.ReadAsync();
                    _ = new BenchProduct(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetDecimal(5), reader.GetInt32(6), reader.GetInt32(7));
                }),
            ], concurrency, options.Warmup, options.Duration));
        }
        return MarkdownReport.Render(Description, Baseline, measurements);
    }

    private static async Task SeedAsync(NpgsqlDataSource dataSource, IDatabase db, SingleFlightCache cache)
    {
        await using (var create = dataSource.CreateCommand(
            "create table bench_product(id bigint primary key, sku text, name text, description text, category text, price numeric(12,2), stock int, version int)"))
        {
            await create.ExecuteNonQueryAsync();
        }
        var entry = new CacheEntryOptions { TimeToLive = TimeSpan.FromHours(1) };
        for (var id = 0; id < Products; id++)
        {
            var product = BenchProduct.Make(id);
            await using var insert = dataSource.CreateCommand("insert into bench_product values ($1, $2, $3, $4, $5, $6, $7, $8)");
            insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = product.Id });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = product.Sku });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = product.Name });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = product.Description });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = product.Category });
            insert.Parameters.Add(new NpgsqlParameter<decimal> { TypedValue = product.Price });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = product.Stock });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = product.Version });
            await insert.ExecuteNonQueryAsync();
            await db.StringSetAsync($"bench:raw:{id}", product.ToJson(), TimeSpan.FromHours(1));
            await cache.SetAsync($"bench:product:{{{id}}}", new OriginValue(product.ToJson(), 1), entry);
        }
    }
}
