using System.Diagnostics;
using System.Globalization;
using System.Text;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using ShopReference.Analytics.Counting;
using ShopReference.Catalog.Caching;
using ShopReference.Shoppers;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// The whole app (Local mode) under mixed shopper traffic while things break: Valkey restarted (its append-only file
/// keeps the data), Valkey's port cut for 10 s (connections reset, as a network fault does), PostgreSQL restarted, and
/// one replica of each service killed. Afterwards, once the app has settled, it checks what must hold and prints it:
/// no cart update lost, no order doubled or lost, no product stale in the cache, the best-selling board equal to the
/// orders in PostgreSQL, and the requests by status. Not a timed test: a report.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // the app runs its servers as Unix processes
public sealed class ChaosScenario : IScenario
{
    private const int Shoppers = 24;
    private const int Products = 1_000;

    public string Name => "chaos";
    public string Description => "shopper traffic through restarts, a cut and killed replicas: what holds afterwards";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        var duration = options.Duration < TimeSpan.FromSeconds(60) ? TimeSpan.FromSeconds(60) : options.Duration;
        await using var shop = await ShopApp.StartAsync(CancellationToken.None);
        var app = shop.App;
        var events = new List<string>();
        var clock = Stopwatch.StartNew();
        void Note(string what) => events.Add($"{clock.Elapsed.TotalSeconds:0}s {what}");

        var simulation = new ShopperSimulation(new SimulationOptions
        {
            Gateway = app.GetEndpoint("rate-limit", "http"),
            Shoppers = Shoppers,
            Duration = duration,
            Products = Products,
            Seed = 42,
            DistinctAddresses = true,
            CatalogAdminKey = shop.CatalogAdminKey,
            ThinkTime = TimeSpan.FromMilliseconds(700), // about 80 requests a minute each: inside the anonymous read quota
        });
        var traffic = simulation.RunAsync(p => Console.Error.WriteLine(p), CancellationToken.None);

        var commands = app.Services.GetRequiredService<ResourceCommandService>();
        await AtAsync(clock, duration * 0.15);
        Note($"restart valkey: {(await commands.ExecuteCommandAsync("valkey", KnownResourceCommands.RestartCommand)).Success}");
        await AtAsync(clock, duration * 0.35);
        Note(await CutAsync(app.GetEndpoint("valkey", "tcp").Port, TimeSpan.FromSeconds(10)));
        await AtAsync(clock, duration * 0.55);
        Note($"restart postgres: {(await commands.ExecuteCommandAsync("postgres", KnownResourceCommands.RestartCommand)).Success}");
        await AtAsync(clock, duration * 0.75);
        foreach (var service in new[] { "catalog", "cart-session", "analytics" })
        {
            var pid = (await shop.ReplicaProcessIdsAsync(service, 1, TimeSpan.FromSeconds(30)))[0];
            Process.GetProcessById(pid).Kill();
            Note($"killed a {service} replica (pid {pid})");
        }
        var final = await traffic;
        Note("traffic stopped");

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await app.GetConnectionStringAsync("valkey") ?? "");
        var cartdb = await app.GetConnectionStringAsync("cartdb") ?? "";
        var catalogdb = await app.GetConnectionStringAsync("catalogdb") ?? "";
        await SettleAsync(valkey, cartdb);
        Note("settled (outbox empty, every event consumed)");

        var (cartsChecked, unitsLostAtEnd, unitsUnacknowledgedAtEnd) = await CheckCartsAsync(app.GetEndpoint("rate-limit", "http"), simulation);
        var (ordersMissing, ordersDoubled, ordersInDatabase) = await CheckOrdersAsync(cartdb, simulation);
        var cache = await CheckCacheAsync(shop, valkey, catalogdb);
        var (boardDiffers, unitsOrdered, unitsCounted) = await CheckBestSellingAsync(valkey, cartdb);

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"### {Description}");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"{Shoppers} shoppers for {duration.TotalSeconds:0} s through the gateway (2 replicas of each service, Local mode). What happened:");
        report.AppendLine();
        foreach (var e in events) report.AppendLine(CultureInfo.InvariantCulture, $"- {e}");
        report.AppendLine();
        report.AppendLine("| check | result |");
        report.AppendLine("|---|---:|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| cart units acknowledged, then missing from the cart (lost updates): seen live / at the end, {cartsChecked} carts | {final.UnitsLost} / {unitsLostAtEnd} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| cart units present that no answer acknowledged (answer lost after the change applied): live / at the end | {final.UnitsUnacknowledged} / {unitsUnacknowledgedAtEnd} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| sessions that vanished | {final.SessionsRestarted} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| orders acknowledged / in PostgreSQL | {simulation.Orders.Count} / {ordersInDatabase} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| acknowledged orders missing from PostgreSQL | {ordersMissing} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| double orders (one Idempotency-Key, two orders) | {ordersDoubled} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| products in Valkey's cache / at another version than PostgreSQL's: when traffic stopped / at the end | {cache.Present} of {Products} / {cache.StaleAtFirst} / {cache.StaleAtEnd} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| time until no cached product was stale | {(cache.Converged is { } converged ? $"{converged.TotalSeconds:0.0} s" : "not within 60 s")} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| reads through each catalog replica (its near cache first) answering another version than PostgreSQL's | {cache.StaleThroughReplicas} of {cache.ReadsThroughReplicas} ({cache.Replicas} replicas) |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| best-selling board vs orders in PostgreSQL (products differing; units counted / ordered) | {boardDiffers}; {unitsCounted} / {unitsOrdered} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| views, adds, orders, price changes, bursts | {final.Views}, {final.Adds}, {final.Checkouts}, {final.PriceChanges}, {final.Bursts} |");
        report.AppendLine(CultureInfo.InvariantCulture,
            $"| requests by status (0 = no answer) | {string.Join(", ", final.RequestsByStatus.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"))} |");
        if (simulation.Errors.Count > 0)
        {
            report.AppendLine();
            report.AppendLine("Server errors other than 503:");
            report.AppendLine();
            foreach (var error in simulation.Errors) report.AppendLine(CultureInfo.InvariantCulture, $"- `{(error.Length > 300 ? error[..300] + "…" : error)}`");
        }
        return report.ToString();
    }

    private static async Task AtAsync(Stopwatch clock, TimeSpan at)
    {
        if (at > clock.Elapsed)
        {
            await Task.Delay(at - clock.Elapsed);
        }
    }

    // Resets every connection to Valkey's port and refuses new ones for a while (iptables, root only).
    private static async Task<string> CutAsync(int port, TimeSpan length)
    {
        string[] rule = ["INPUT", "-p", "tcp", "--dport", port.ToString(CultureInfo.InvariantCulture), "-j", "REJECT", "--reject-with", "tcp-reset"];
        var (added, output) = await ShopReference.Hosting.ProcessRunner.RunAsync("iptables", ["-I", .. rule], null, TimeSpan.FromSeconds(10), CancellationToken.None)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : (-1, t.Exception?.InnerException?.Message ?? "failed"), TaskScheduler.Default);
        if (added != 0)
        {
            return $"cut of valkey's port skipped: iptables unavailable ({output.Trim()})";
        }
        try
        {
            await Task.Delay(length);
        }
        finally
        {
            await ShopReference.Hosting.ProcessRunner.RunAsync("iptables", ["-D", .. rule], null, TimeSpan.FromSeconds(10), CancellationToken.None);
        }
        return $"cut valkey's port {port} for {length.TotalSeconds:0} s (connections reset)";
    }

    // The outbox is empty and the consumer group has read and acknowledged everything: the counts can be compared.
    private static async Task SettleAsync(IConnectionMultiplexer valkey, string cartdb)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(3))
        {
            try
            {
                await using var connection = new NpgsqlConnection(cartdb);
                await connection.OpenAsync();
                var outbox = (long)(await new NpgsqlCommand("select count(*) from outbox", connection).ExecuteScalarAsync())!;
                if (outbox == 0 && await BenchApp.AnalyticsDrainedAsync(valkey))
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or RedisException)
            {
                // still recovering
            }
            await Task.Delay(500);
        }
    }

    private static async Task<(int Checked, long Lost, long Unacknowledged)> CheckCartsAsync(Uri gateway, ShopperSimulation simulation)
    {
        var (checkedCarts, lost, unacknowledged) = (0, 0L, 0L);
        foreach (var shopper in simulation.Shoppers.Where(s => s.Cookie is not null))
        {
            using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = gateway };
            http.DefaultRequestHeaders.Add("X-Forwarded-For", shopper.Address);
            var cart = await ShopperSimulation.CartAsync(http, shopper.Cookie!, CancellationToken.None);
            checkedCarts++;
            var (missing, extra) = ShopperSimulation.Difference(shopper.ExpectedCart, cart ?? new Dictionary<long, int>());
            (lost, unacknowledged) = (lost + missing, unacknowledged + extra);
        }
        return (checkedCarts, lost, unacknowledged);
    }

    private static async Task<(int Missing, long Doubled, long InDatabase)> CheckOrdersAsync(string cartdb, ShopperSimulation simulation)
    {
        await using var connection = new NpgsqlConnection(cartdb);
        await connection.OpenAsync();
        var missing = 0;
        foreach (var order in simulation.Orders)
        {
            await using var find = new NpgsqlCommand("select count(*) from orders where id = $1 and idempotency_key = $2", connection)
            {
                Parameters = { new() { Value = order.Id }, new() { Value = order.IdempotencyKey } },
            };
            if ((long)(await find.ExecuteScalarAsync())! != 1) missing++;
        }
        var doubled = (long)(await new NpgsqlCommand(
            "select count(*) - count(distinct (session_hash, idempotency_key)) from orders", connection).ExecuteScalarAsync())!;
        var total = (long)(await new NpgsqlCommand("select count(*) from orders", connection).ExecuteScalarAsync())!;
        return (missing, doubled, total);
    }

    private sealed record CacheCheck(int Present, int StaleAtFirst, int StaleAtEnd, TimeSpan? Converged, int Replicas, int ReadsThroughReplicas, int StaleThroughReplicas);

    /// <summary>
    /// The cache against PostgreSQL once traffic has stopped: how many products Valkey holds, how many of those hold
    /// another version, first and once converged (the change feed applies the last changes within moments; a minute at
    /// most), and then every product read through each catalog replica as a client reads it (near cache, then Valkey,
    /// then PostgreSQL), its ETag against PostgreSQL's version. A product missing from the cache is not counted fresh
    /// or stale in Valkey; through a replica every product is read.
    /// </summary>
    private static async Task<CacheCheck> CheckCacheAsync(ShopApp shop, IConnectionMultiplexer valkey, string catalogdb)
    {
        var clock = Stopwatch.StartNew();
        var versions = await VersionsAsync(catalogdb);
        var (present, first) = await StaleInValkeyAsync(valkey, versions);
        var stale = first;
        TimeSpan? converged = stale == 0 ? TimeSpan.Zero : null;
        while (stale > 0 && clock.Elapsed < TimeSpan.FromMinutes(1))
        {
            await Task.Delay(250); // a poll: the feed's last changes are on their way
            versions = await VersionsAsync(catalogdb);
            (present, stale) = await StaleInValkeyAsync(valkey, versions);
            if (stale == 0) converged = clock.Elapsed;
        }

        var directory = await shop.EnvironmentOfAsync("rate-limit", ShopReference.Contracts.Routing.ReplicaDirectoryFile.EnvironmentVariable);
        var replicas = ShopReference.Contracts.Routing.ReplicaDirectoryFile.Read(directory).GetValueOrDefault("catalog") ?? [];
        int reads = 0, staleThrough = 0;
        foreach (var replica in replicas)
        {
            using var http = new HttpClient { BaseAddress = new Uri(replica) };
            foreach (var (id, version) in versions)
            {
                using var response = await http.GetAsync($"/api/catalog/products/{id}");
                reads++;
                if (response.Headers.ETag?.Tag != $"\"v{version}\"") staleThrough++;
            }
        }
        return new(present, first, stale, converged, replicas.Length, reads, staleThrough);
    }

    private static async Task<Dictionary<long, int>> VersionsAsync(string catalogdb)
    {
        var versions = new Dictionary<long, int>();
        await using var connection = new NpgsqlConnection(catalogdb);
        await connection.OpenAsync();
        await using var reader = await new NpgsqlCommand($"select id, version from products where id <= {Products}", connection).ExecuteReaderAsync();
        while (await reader.ReadAsync()) versions[reader.GetInt64(0)] = reader.GetInt32(1);
        return versions;
    }

    private static async Task<(int Present, int Stale)> StaleInValkeyAsync(IConnectionMultiplexer valkey, Dictionary<long, int> versions)
    {
        int present = 0, stale = 0;
        foreach (var (id, version) in versions)
        {
            var stored = await valkey.GetDatabase().StringGetAsync(ProductCache.Key(id));
            if (stored.IsNull || !CacheEnvelope.TryDecode((ReadOnlyMemory<byte>)stored, out var entry)) continue;
            present++;
            if (entry.Negative || entry.Version != version) stale++; // "not found" for a product that exists is stale too
        }
        return (present, stale);
    }

    private static async Task<(int Differing, long Ordered, long Counted)> CheckBestSellingAsync(IConnectionMultiplexer valkey, string cartdb)
    {
        var ordered = new Dictionary<long, long>();
        var hours = new HashSet<DateTime>();
        await using (var connection = new NpgsqlConnection(cartdb))
        {
            await connection.OpenAsync();
            await using var reader = await new NpgsqlCommand(
                "select l.product_id, l.quantity, date_trunc('hour', o.placed_at at time zone 'utc') from orders o join order_lines l on l.order_id = o.id", connection).ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                ordered[reader.GetInt64(0)] = ordered.GetValueOrDefault(reader.GetInt64(0)) + reader.GetInt32(1);
                hours.Add(DateTime.SpecifyKind(reader.GetDateTime(2), DateTimeKind.Utc));
            }
        }
        var counted = new Dictionary<long, long>();
        foreach (var hour in hours)
        {
            foreach (var (product, count) in await Leaderboards.ReadHourAsync(valkey.GetDatabase(), "sold", hour))
            {
                counted[product] = counted.GetValueOrDefault(product) + count;
            }
        }
        var differing = ordered.Keys.Union(counted.Keys).Count(p => ordered.GetValueOrDefault(p) != counted.GetValueOrDefault(p));
        return (differing, ordered.Values.Sum(), counted.Values.Sum());
    }
}
