using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.ChangeFeed;
using ShopReference.Catalog.Data;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// Change-data-capture lag: the catalog's <see cref="ProductChangeFeed"/> runs against its own servers; each of N
/// single-row updates is committed, and the lag is the time from the commit returning to the cache's fill being
/// announced on pub/sub (the same message the herd waiters wake on).
/// </summary>
public sealed class CdcLagScenario : IScenario
{
    private const int Updates = 300;
    private const string Channel = "catalog:cache:filled";

    public string Name => "cdc-lag";
    public string Description => "commit-to-cache lag of change-data capture, 300 single-row updates";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        var connectionString = await servers.Postgres.CreateDatabaseAsync("bench_cdc");
        // The harness's throw-away server commits asynchronously (fast tests), which holds WAL back from the change
        // feed for up to wal_writer_delay (200 ms). Production commits synchronously: measure that.
        var database = new NpgsqlConnectionStringBuilder(connectionString).Database;
        await using (var admin = new NpgsqlConnection(servers.Postgres.ConnectionString()))
        {
            await admin.OpenAsync();
            await using var synchronous = new NpgsqlCommand($"alter database \"{database}\" set synchronous_commit = on", admin);
            await synchronous.ExecuteNonQueryAsync();
        }
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var initializer = new CatalogInitializer(dataSource, NullLogger<CatalogInitializer>.Instance);
        await initializer.StartAsync(CancellationToken.None);
        await initializer.Completion;

        var services = new ServiceCollection().AddMetrics();
        services.AddStackExchangeRedisOutputCache(o => o.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer));
        await using var provider = services.BuildServiceProvider();
        await using var flights = new SingleFlightCache(multiplexer, new SingleFlightOptions { Channel = Channel });
        await using var near = new NearCache(flights, multiplexer, new NearCacheOptions());
        var metrics = new CatalogMetrics(provider.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), near);
        var cache = new ProductCache(near, new CatalogDatabase(dataSource), metrics, NullLogger<ProductCache>.Instance);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:catalogdb"] = connectionString,
            ["Catalog:ChangeFeed:Slot"] = "bench_cdc_" + Guid.NewGuid().ToString("N")[..8], // slot names are server-wide
        }).Build();
        var outputCache = provider.GetRequiredService<IOutputCacheStore>();
        var slot = new ReplicationSlot(dataSource, multiplexer, outputCache, cache, metrics, configuration, NullLogger<ReplicationSlot>.Instance);
        var feed = new ProductChangeFeed(dataSource, configuration, cache, new CatalogDatabase(dataSource), outputCache, metrics, initializer, slot,
            NullLogger<ProductChangeFeed>.Instance);

        var filled = new ConcurrentDictionary<string, TaskCompletionSource<long>>();
        await multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal(Channel), (_, message) =>
        {
            if (Announcement.TryParse(message, out var change) && filled.TryRemove(change.Key, out var waiter)) waiter.TrySetResult(Stopwatch.GetTimestamp());
        });

        await feed.StartAsync(CancellationToken.None);
        try
        {
            await WarmUpAsync(dataSource, filled); // the first change also waits for the slot and the stream to start
            var lags = new List<double>();
            for (var i = 0; i < Updates; i++)
            {
                var id = 1 + i % 1000;
                var waiter = filled[$"catalog:product:{{{id}}}"] = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                await using (var update = dataSource.CreateCommand("update products set stock = stock + 1, version = version + 1 where id = $1"))
                {
                    update.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
                    await update.ExecuteNonQueryAsync();
                }
                var committed = Stopwatch.GetTimestamp();
                var applied = await waiter.Task.WaitAsync(TimeSpan.FromSeconds(30));
                lags.Add(Stopwatch.GetElapsedTime(committed, applied).TotalMilliseconds);
            }
            lags.Sort();
            return string.Create(CultureInfo.InvariantCulture, $"""
                ### {Description}

                | updates | lag p50 ms | lag p99 ms | lag max ms |
                |---:|---:|---:|---:|
                | {Updates} | {lags[lags.Count / 2]:0.0} | {lags[(int)(lags.Count * 0.99)]:0.0} | {lags[^1]:0.0} |
                """);
        }
        finally
        {
            await feed.StopAsync(CancellationToken.None);
        }
    }

    private static async Task WarmUpAsync(NpgsqlDataSource dataSource, ConcurrentDictionary<string, TaskCompletionSource<long>> filled)
    {
        var waiter = filled["catalog:product:{5000}"] = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        // Until the feed streams, a change made before its slot existed is not seen: repeat until one arrives.
        while (!waiter.Task.IsCompleted)
        {
            await using (var update = dataSource.CreateCommand("update products set version = version + 1 where id = 5000"))
            {
                await update.ExecuteNonQueryAsync();
            }
            await Task.WhenAny(waiter.Task, tick.WaitForNextTickAsync(deadline.Token).AsTask());
        }
    }
}
