using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Npgsql;
using ShopReference.Catalog.Apis;
using ShopReference.Catalog.Caching;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Tests.Caching;

/// <summary>
/// The catalog's change feed, hosted in process, under real faults: Valkey's connections reset while products change,
/// a quiet catalog beside a busy database, and a slot dropped or invalidated while rows change. Each ends with the cache
/// (or the WAL the server keeps) where it must be.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class ChangeFeedFaultTests(ServersFixture fixture)
{
    private static readonly TimeSpan Converges = TimeSpan.FromSeconds(90);
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Valkey_connections_reset_during_a_hundred_product_updates_and_every_product_equals_postgres_after_it_returns()
    {
        fixture.RequireOneValkeyProcess("a proxy resets its connections");
        await using var proxy = new TcpFaultProxy(fixture.Valkey.Port);
        var database = await fixture.Postgres.CreateDatabaseAsync("feedreset");
        await using var catalog = await StartCatalogAsync(database, $"127.0.0.1:{proxy.Port},password={fixture.Valkey.Password},abortConnect=false,connectTimeout=1000,syncTimeout=1000,asyncTimeout=1000");
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString); // past the proxy
        using var http = catalog.Client();
        for (var id = 1; id <= 100; id++)
        {
            (await http.GetAsync($"/api/catalog/products/{id}", Ct)).EnsureSuccessStatusCode(); // cached at version 1
        }

        proxy.Cut();
        for (var id = 1; id <= 100; id++)
        {
            await ExecuteAsync(database, $"update products set price = price + 1, version = version + 1 where id = {id}"); // one commit each
        }
        // The feed receives the changes and cannot apply them: it must stop without confirming, more than once.
        var metrics = (CatalogMetrics)catalog.Services.GetService(typeof(CatalogMetrics))!;
        await Eventually.UntilAsync(() => metrics.CdcRetries >= 2, TimeSpan.FromSeconds(30), "the feed never failed to apply a change", cancellationToken: Ct);
        proxy.Restore();

        await Eventually.UntilAsync(async () => await StaleAsync(valkey, database, 1, 100) == 0, Converges,
            "every cached product equal to PostgreSQL after Valkey came back", TimeSpan.FromMilliseconds(500), Ct);
    }

    [Fact]
    public async Task A_hundred_MiB_of_wal_in_another_database_is_released_while_the_catalog_is_quiet()
    {
        var database = await fixture.Postgres.CreateDatabaseAsync("feedwal");
        var other = await fixture.Postgres.CreateDatabaseAsync("feedwalother");
        await using var catalog = await StartCatalogAsync(database, fixture.Valkey.ConnectionString);
        var slot = ((IConfiguration)catalog.Services.GetService(typeof(IConfiguration))!)["Catalog:ChangeFeed:Slot"]!;

        await ExecuteAsync(other, "create table junk as select g, repeat(md5(g::text), 32) as filler from generate_series(1, 100000) g"); // ~100 MiB of WAL
        var retainedAfterWrite = await RetainedAsync(slot);

        // Bound: 16 MiB within a minute (the feed touches its heartbeat row after 10 quiet seconds; PostgreSQL hears
        // the confirmation with the next status update).
        await Eventually.UntilAsync(async () => await RetainedAsync(slot) < 16 * 1024 * 1024, TimeSpan.FromSeconds(60),
            "the slot kept the other database's WAL", TimeSpan.FromSeconds(1), Ct);
        Assert.True(retainedAfterWrite > 64 * 1024 * 1024, $"the write produced only {retainedAfterWrite} bytes of WAL");
        var metrics = (CatalogMetrics)catalog.Services.GetService(typeof(CatalogMetrics))!;
        await Eventually.UntilAsync(() => metrics.RetainedWalBytes is >= 0 and < 16 * 1024 * 1024, TimeSpan.FromSeconds(30),
            "the retained-WAL gauge followed", cancellationToken: Ct);
    }

    [Fact]
    public async Task A_slot_dropped_under_a_running_feed_while_rows_change_is_recreated_and_the_cache_converges()
    {
        var database = await fixture.Postgres.CreateDatabaseAsync("feeddrop");
        await using var catalog = await StartCatalogAsync(database, fixture.Valkey.ConnectionString);
        var slot = ((IConfiguration)catalog.Services.GetService(typeof(IConfiguration))!)["Catalog:ChangeFeed:Slot"]!;
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        using var http = catalog.Client();
        for (var id = 201; id <= 220; id++)
        {
            (await http.GetAsync($"/api/catalog/products/{id}", Ct)).EnsureSuccessStatusCode();
        }

        // Stop the reader and drop its slot, then change rows before the feed is back: no slot sees these changes.
        await Eventually.UntilAsync(async () => await DropSlotAsync(slot), TimeSpan.FromSeconds(10), "the slot could not be dropped", TimeSpan.FromMilliseconds(20), Ct);
        await ExecuteAsync(database, "update products set name = name || ' (changed in the gap)', version = version + 1 where id between 201 and 220");

        await Eventually.UntilAsync(async () => await StaleAsync(valkey, database, 201, 220) == 0, Converges,
            "the cache reset after the slot was recreated", TimeSpan.FromMilliseconds(500), Ct);
        // The near cache is flushed after the entries are deleted (the deletions announce nothing one by one), so the
        // API serves the change a moment after Valkey shows it, and from then on.
        await Eventually.UntilAsync(async () => (await http.GetFromJsonAsync<JsonElement>("/api/catalog/products/205", Ct))
            .GetProperty("name").GetString()!.EndsWith("(changed in the gap)", StringComparison.Ordinal), Converges,
            "the API still served the product from before the gap", TimeSpan.FromMilliseconds(100), Ct);
        for (var id = 201; id <= 220; id++)
        {
            var product = await http.GetFromJsonAsync<JsonElement>($"/api/catalog/products/{id}", Ct);
            Assert.EndsWith("(changed in the gap)", product.GetProperty("name").GetString());
        }
    }

    [Fact]
    public async Task A_slot_invalidated_by_the_wal_cap_while_the_catalog_was_down_is_recreated_and_the_cache_converges()
    {
        // A server of its own: its WAL cap is small, and this test fills it.
        await using var postgres = await TestPostgresServer.StartAsync(settings: new Dictionary<string, string>
        {
            ["max_slot_wal_keep_size"] = "32MB", ["max_wal_size"] = "64MB", ["min_wal_size"] = "32MB",
        });
        var database = await postgres.CreateDatabaseAsync("feedcap");
        var other = await postgres.CreateDatabaseAsync("feedcapother");
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var slot = "catalog_cache_" + Guid.NewGuid().ToString("N")[..8];
        await using (var first = await StartCatalogAsync(database, fixture.Valkey.ConnectionString, slot))
        {
            using var http = first.Client();
            for (var id = 301; id <= 320; id++)
            {
                (await http.GetAsync($"/api/catalog/products/{id}", Ct)).EnsureSuccessStatusCode();
            }
            // The feed creates its slot in the background: stopped before that, there would be no slot to invalidate.
            await Eventually.UntilAsync(async () => await SlotExistsAsync(postgres, slot), TimeSpan.FromSeconds(60),
                "the first catalog never created its slot", TimeSpan.FromMilliseconds(100), Ct);
        }

        // While no catalog runs: rows change, and far more WAL than the cap is written, then a checkpoint removes it.
        await ExecuteAsync(database, "update products set price = price + 2, version = version + 1 where id between 301 and 320");
        await ExecuteAsync(other, "create table junk as select g, repeat(md5(g::text), 32) as filler from generate_series(1, 100000) g");
        await using (var admin = new NpgsqlConnection(postgres.ConnectionString()))
        {
            await admin.OpenAsync(Ct);
            await new NpgsqlCommand("checkpoint", admin).ExecuteNonQueryAsync(Ct);
            await new NpgsqlCommand("select pg_switch_wal()", admin).ExecuteNonQueryAsync(Ct);
            await new NpgsqlCommand("checkpoint", admin).ExecuteNonQueryAsync(Ct);
            var status = await new NpgsqlCommand($"select wal_status from pg_replication_slots where slot_name = '{slot}'", admin).ExecuteScalarAsync(Ct);
            Assert.Equal("lost", status);
        }

        await using var second = await StartCatalogAsync(database, fixture.Valkey.ConnectionString, slot);
        await Eventually.UntilAsync(async () => await StaleAsync(valkey, database, 301, 320, postgres) == 0, Converges,
            "the cache reset after the invalidated slot was recreated", TimeSpan.FromMilliseconds(500), Ct);
    }

    private async Task<bool> SlotExistsAsync(TestPostgresServer postgres, string slot)
    {
        await using var admin = new NpgsqlConnection(postgres.ConnectionString());
        await admin.OpenAsync(Ct);
        await using var exists = new NpgsqlCommand("select count(*) from pg_replication_slots where slot_name = $1", admin) { Parameters = { new() { Value = slot } } };
        return (long)(await exists.ExecuteScalarAsync(Ct))! == 1;
    }

    private async Task<InProcessService> StartCatalogAsync(string database, string valkey, string? slot = null)
    {
        var service = await InProcessService.CatalogAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey,
            ["ConnectionStrings:catalogdb"] = database,
            ["Catalog:ChangeFeed:Slot"] = slot ?? "catalog_cache_" + Guid.NewGuid().ToString("N")[..8], // slot names are server-wide
        });
        using var http = service.Client();
        await Eventually.UntilAsync(async () => (await http.GetAsync("/health", Ct)).IsSuccessStatusCode, TimeSpan.FromSeconds(60),
            "the catalog never became ready", TimeSpan.FromMilliseconds(200), Ct);
        var name = ((IConfiguration)service.Services.GetService(typeof(IConfiguration))!)["Catalog:ChangeFeed:Slot"]!;
        var server = new NpgsqlConnectionStringBuilder(database) { Database = "postgres" }.ConnectionString;
        await Eventually.UntilAsync(async () => await ScalarAsync(server, $"select active from pg_replication_slots where slot_name = '{name}'") is true,
            TimeSpan.FromSeconds(60), "the change feed never started streaming", TimeSpan.FromMilliseconds(200), Ct);
        return service;
    }

    // How many of the products [from, to] are cached at another version than PostgreSQL holds (absent counts as fine:
    // the next read loads PostgreSQL's).
    private async Task<int> StaleAsync(ConnectionMultiplexer valkey, string database, long from, long to, TestPostgresServer? server = null)
    {
        var versions = new Dictionary<long, int>();
        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.OpenAsync(Ct);
            await using var select = new NpgsqlCommand($"select id, version from products where id between {from} and {to}", connection);
            await using var reader = await select.ExecuteReaderAsync(Ct);
            while (await reader.ReadAsync(Ct))
            {
                versions[reader.GetInt64(0)] = reader.GetInt32(1);
            }
        }
        var stale = 0;
        foreach (var (id, version) in versions)
        {
            var stored = await valkey.GetDatabase().StringGetAsync(ProductCache.Key(id));
            if (!stored.IsNull && CacheEnvelope.TryDecode((ReadOnlyMemory<byte>)stored, out var entry) && entry.Version != version)
            {
                stale++;
            }
        }
        return stale;
    }

    private async Task<bool> DropSlotAsync(string slot)
    {
        try
        {
            await ScalarAsync(fixture.Postgres.ConnectionString(),
                $"select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = '{slot}' and active");
            await ScalarAsync(fixture.Postgres.ConnectionString(), $"select pg_drop_replication_slot('{slot}')");
            return true;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ObjectInUse)
        {
            return false; // the walsender has not exited yet
        }
    }

    private async Task<long> RetainedAsync(string slot) =>
        (long)(await ScalarAsync(fixture.Postgres.ConnectionString(),
            $"select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint from pg_replication_slots where slot_name = '{slot}'"))!;

    private async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync(Ct);
    }

    private Task ExecuteAsync(string database, string sql) => ScalarAsync(database, sql);
}
