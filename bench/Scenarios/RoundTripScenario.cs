using Npgsql;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// The floor every pattern is compared with: one raw Valkey GET round trip (baseline) against one PostgreSQL
/// primary-key select of a row of the same size, both on loopback.
/// </summary>
public sealed class RoundTripScenario : IScenario
{
    private const int Rows = 10_000;

    public string Name => "roundtrip";
    public string Description => "one raw Valkey GET vs one PostgreSQL primary-key select";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
        var valkey = multiplexer.GetDatabase();
        var connectionString = await servers.Postgres.CreateDatabaseAsync("bench_roundtrip");
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = 64 }.ConnectionString);

        var payload = new string('x', 200);
        await SeedAsync(dataSource, valkey, payload);

        var measurements = new List<Measurement>();
        foreach (var concurrency in options.ConcurrencyLevels)
        {
            measurements.Add(await LoadRunner.MeasureAsync("Valkey GET (raw round trip)", async () =>
            {
                var value = await valkey.StringGetAsync($"bench:row:{Random.Shared.Next(Rows)}");
                if (value.IsNull) throw new InvalidOperationException("seeded key missing");
            }, concurrency, options.Warmup, options.Duration));

            measurements.Add(await LoadRunner.MeasureAsync("PostgreSQL select by primary key", async () =>
            {
                await using var command = dataSource.CreateCommand("select payload from bench_row where id = $1");
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Random.Shared.Next(Rows) });
                if (await command.ExecuteScalarAsync() is null) throw new InvalidOperationException("seeded row missing");
            }, concurrency, options.Warmup, options.Duration));
        }
        return MarkdownReport.Render(Description, "Valkey GET (raw round trip)", measurements);
    }

    private static async Task SeedAsync(NpgsqlDataSource dataSource, IDatabase valkey, string payload)
    {
        await using (var create = dataSource.CreateCommand("create table bench_row(id int primary key, payload text not null)"))
        {
            await create.ExecuteNonQueryAsync();
        }
        await using (var fill = dataSource.CreateCommand("insert into bench_row select g, $1 from generate_series(0, $2 - 1) g"))
        {
            fill.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
            fill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Rows });
            await fill.ExecuteNonQueryAsync();
        }
        await using (var analyze = dataSource.CreateCommand("analyze bench_row"))
        {
            await analyze.ExecuteNonQueryAsync();
        }
        var batch = valkey.CreateBatch();
        var writes = Enumerable.Range(0, Rows).Select(i => batch.StringSetAsync($"bench:row:{i}", payload, TimeSpan.FromHours(1))).ToArray();
        batch.Execute();
        await Task.WhenAll(writes);
    }
}
