using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.ChangeFeed;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using StackExchange.Redis;

namespace ShopReference.Tests.Caching;

/// <summary>
/// The catalog, hosted in process, when PostgreSQL goes away under it (the chaos benchmark's restart found the 500 this
/// closes): cached products are still served from Valkey, an uncached one is a 503 ProblemDetails with Retry-After.
/// It owns its Valkey as well as its PostgreSQL: every other test's catalog resets the whole product cache of the Valkey
/// it uses when it creates its replication slot, and on a shared server that dropped this test's cached product
/// between the warm read and the outage (CI's cluster pass).
/// </summary>
public sealed class CatalogPostgresOutageTests
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Without_postgres_cached_products_are_served_and_an_uncached_one_is_a_503_problem()
    {
        await using var postgres = await TestPostgresServer.StartAsync(); // its own server: this test stops it
        await using var valkey = await TestValkey.StartAsync();
        await using var catalog = await InProcessService.CatalogAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey.ConnectionString,
            ["ConnectionStrings:catalogdb"] = await postgres.CreateDatabaseAsync("pgoutage") + ";Timeout=2;Command Timeout=2",
            ["Catalog:ChangeFeed:Slot"] = "catalog_cache_" + Guid.NewGuid().ToString("N")[..8],
            // Off, so the cached read below comes from Valkey ('hit'), not from this process's memory ('hit-local').
            ["Catalog:NearCache:Enabled"] = "false",
        });
        using var http = catalog.Client();
        await Eventually.UntilAsync(async () => (await http.GetAsync("/health", Ct)).IsSuccessStatusCode, TimeSpan.FromSeconds(60),
            "the catalog never became ready", TimeSpan.FromMilliseconds(200), Ct);
        // The feed's first slot resets the cache when it is created: warm only after that, or the reset drops the entry.
        // "Active" alone is not that: the connection creating the slot holds it while it waits for a consistent point,
        // and the reset follows. CI once warmed in that gap ("entry in Valkey now: False", no degraded read). A walsender
        // streaming from the slot comes after the reset.
        var slot = catalog.Services.GetRequiredService<ReplicationSlot>();
        var dataSource = catalog.Services.GetRequiredService<NpgsqlDataSource>();
        await Eventually.UntilAsync(() => StreamingAsync(dataSource, slot.Name), TimeSpan.FromSeconds(60), "the change feed never started streaming",
            TimeSpan.FromMilliseconds(200), Ct);
        var cachedId = Random.Shared.Next(1, 5000);
        using (var warm = await http.GetAsync($"/api/catalog/products/{cachedId}", Ct))
        {
            Assert.True(warm.StatusCode == HttpStatusCode.OK, $"warm read: {warm.StatusCode} {await warm.Content.ReadAsStringAsync(Ct)}");
        }

        var primariesBefore = await PrimariesAsync(valkey);

        await postgres.StopAsync();
        using var cached = await http.GetAsync($"/api/catalog/products/{cachedId}", Ct);
        using var uncached = await http.GetAsync($"/api/catalog/products/{cachedId + 5000}", Ct);

        if (cached.StatusCode != HttpStatusCode.OK)
        {
            // Say which store failed the read (CI's cluster pass once saw a 503 here and printed nothing more).
            var metrics = catalog.Services.GetRequiredService<CatalogMetrics>();
            await using var client = await ConnectionMultiplexer.ConnectAsync(valkey.ConnectionString);
            var stored = await client.GetDatabase().KeyExistsAsync(ProductCache.Key(cachedId));
            Assert.Fail($"cached read: {cached.StatusCode} {await cached.Content.ReadAsStringAsync(Ct)}; entry in Valkey now: {stored}; " +
                $"degraded reads {metrics.DegradedCount}, fills refused {metrics.Counters.FillsRefused}, misses {metrics.Counters.Misses}, " +
                $"hits {metrics.Counters.Hits}, near-cache flushes {metrics.Local.Flushes}; primaries before the stop " +
                $"[{primariesBefore}], after [{await PrimariesAsync(valkey)}]");
        }
        Assert.Equal("hit", Assert.Single(cached.Headers.GetValues("X-Cache"))); // served from Valkey
        Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
        Assert.Equal("application/problem+json", uncached.Content.Headers.ContentType?.MediaType);
        Assert.NotNull(uncached.Headers.RetryAfter);
    }

    private async Task<bool> StreamingAsync(NpgsqlDataSource dataSource, string slot)
    {
        await using var command = dataSource.CreateCommand("""
            select exists(select 1 from pg_replication_slots s join pg_stat_replication r on r.pid = s.active_pid
                          where s.slot_name = $1 and r.state in ('catchup', 'streaming'))
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = slot });
        return await command.ExecuteScalarAsync(Ct) is true;
    }

    // A failover on the cluster changes which ports serve slots.
    private static async Task<string> PrimariesAsync(TestValkey valkey) =>
        valkey.Cluster is { } cluster ? string.Join(',', (await cluster.PrimaryPortsAsync()).Order()) : "one server";
}
