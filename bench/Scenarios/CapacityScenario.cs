using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.Hosting;
using Npgsql;
using ShopReference.Bench.Harness;
using ShopReference.Shoppers;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// What one request of each public route costs every part of the app, measured with the whole app running (Local
/// mode, limits raised, sent to the gateway's own port as a load balancer would): Valkey commands, Valkey CPU and
/// bytes, PostgreSQL write transactions, WAL and CPU, and each service's CPU. The app's idle cost (health probes,
/// heartbeats, blocked stream reads) is measured first and taken off. A view's analytics work is counted with it:
/// each route's reading waits until the consumer group has applied every event. Then <see cref="CapacityModel"/> turns
/// the costs into what a shop at 10k, 100k and 1M requests/s needs (docs/capacity.md).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CapacityScenario : IScenario
{
    private const int Products = 1_000; // the shoppers' working set: the hottest of the 10,000 seeded
    private static readonly string[] Services = ["rate-limit", "catalog", "cart-session", "analytics"];

    public string Name => "capacity";
    public string Description => "cost per request of each route (Valkey, PostgreSQL, CPU per service) and the capacity table";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var shop = await BenchApp.StartAsync();
        var (meter, valkeyConnection, postgresSource) = await ResourceMeter.ForAppAsync(shop, Services);
        await using var valkey = valkeyConnection;
        await using var postgres = postgresSource;
        var gateway = (await shop.ReplicaAddressesAsync("rate-limit", 1, TimeSpan.FromSeconds(60)))[0];
        var concurrency = options.ConcurrencyLevels.Max();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseCookies = false }) { BaseAddress = gateway };

        // The idle app, over as long as a route's run, so its background work can be taken off each route's reading.
        var idleStart = await meter.ReadAsync();
        var idleClock = Stopwatch.StartNew();
        await Task.Delay(options.Warmup + options.Duration);
        var idlePerSecond = (await meter.ReadAsync()).Minus(idleStart).Times(1 / idleClock.Elapsed.TotalSeconds);

        var costs = new List<RouteCost>();
        // Two references past the gateway, not in the mix: a cached product read sent straight to a catalog replica, and
        // the same read as a visitor's view (the signed client context the gateway would add, minted with the run's key).
        var replica = (await shop.ReplicaAddressesAsync("catalog", 1, TimeSpan.FromSeconds(60)))[0];
        using var direct = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseCookies = false }) { BaseAddress = replica };
        var clientContext = BenchApp.ClientContext(shop, "capacity");
        var zipf = new Zipf(Products);
        Route[] references =
        [
            new("product read straight to a replica (reference)", 1, () => ExpectOkAsync(direct, HttpMethod.Get, $"/api/catalog/products/{zipf.Next(Random.Shared)}")),
            new("product view straight to a replica (reference)", 1, async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/catalog/products/{zipf.Next(Random.Shared)}");
                request.Headers.Add(ShopAuthentication.ClientContextHeader, clientContext);
                using var response = await direct.SendAsync(request);
                if (response.StatusCode != HttpStatusCode.OK) throw new InvalidOperationException($"view straight to a replica: {(int)response.StatusCode}");
            }),
        ];

        foreach (var route in Routes(http).Concat(references))
        {
            if (options.Only is not null && !route.Name.Contains(options.Only, StringComparison.OrdinalIgnoreCase)) continue;
            long completed = 0;
            var before = await meter.ReadAsync();
            var clock = Stopwatch.StartNew();
            var measurement = await LoadRunner.MeasureAsync(route.Name, async () =>
            {
                await route.Operation();
                Interlocked.Increment(ref completed);
            }, concurrency, options.Warmup, options.Duration);
            await AnalyticsCaughtUpAsync(valkey);
            await QuietAsync(meter, idlePerSecond);
            var used = (await meter.ReadAsync()).Minus(before).Minus(idlePerSecond.Times(clock.Elapsed.TotalSeconds));
            costs.Add(new RouteCost(route.Name, route.Requests, measurement, used.Times(1.0 / completed)));
        }
        return CapacityModel.Render(costs, concurrency, idlePerSecond, await KeyFamiliesAsync(valkey));
    }

    // What each kind of data weighs: every key of the family, summed (a few thousand keys after a run).
    private static async Task<IReadOnlyList<KeyFamily>> KeyFamiliesAsync(IConnectionMultiplexer valkey)
    {
        (string Name, string Pattern, string ItemName)[] families =
        [
            ("product cache", "catalog:product:*", "products"),
            ("carts", "cart:session:*", "carts"),
            ("rate-limit keys", "ratelimit:*", "keys"),
            ("analytics dedupe", "analytics:applied:*", "events"),
            ("analytics hourly buckets", "analytics:lb:*", "product-hours"),
        ];
        var database = valkey.GetDatabase();
        var result = new List<KeyFamily>();
        foreach (var (name, pattern, itemName) in families)
        {
            long keys = 0, bytes = 0, items = 0;
            foreach (var primary in valkey.GetServers().Where(s => !s.IsReplica))
            {
                await foreach (var key in primary.KeysAsync(pattern: pattern, pageSize: 1000))
                {
                    keys++;
                    bytes += (long)await database.ExecuteAsync("MEMORY", "USAGE", key, "SAMPLES", "0");
                    items += await database.KeyTypeAsync(key) switch
                    {
                        RedisType.Set => await database.SetLengthAsync(key),
                        RedisType.SortedSet => await database.SortedSetLengthAsync(key),
                        _ => 1, // a hash or a string is one item (a cart, a cached product, a limiter's state)
                    };
                }
            }
            result.Add(new KeyFamily(name, pattern, keys, bytes, items, itemName));
        }
        return result;
    }

    /// <summary>A route as the load runner drives it: <paramref name="Requests"/> HTTP requests per operation.</summary>
    private sealed record Route(string Name, int Requests, Func<Task> Operation);

    private static IEnumerable<Route> Routes(HttpClient http)
    {
        var zipf = new Zipf(Products);
        var carts = new ConcurrentBag<(string Cookie, int Adds)>();
        return
        [
            new(CapacityModel.ProductPage, 1, () => ExpectOkAsync(http, HttpMethod.Get, $"/api/catalog/products/{zipf.Next(Random.Shared)}")),
            new(CapacityModel.ListPage, 1, () => ExpectOkAsync(http, HttpMethod.Get, $"/api/catalog/products?page={Random.Shared.Next(1, 51)}&pageSize=20")),
            new(CapacityModel.CartAdd, 1, async () =>
            {
                // Each cart used by one request at a time, as a shopper uses theirs, and left after ten adds (a new
                // session then starts), so carts stay the size shoppers make them.
                var (cookie, adds) = carts.TryTake(out var cart) ? cart : (null, 0);
                using var response = await ExpectOkAsync(http, HttpMethod.Post, "/api/cart/items", cookie, new { productId = zipf.Next(Random.Shared), quantity = 1 });
                if (adds + 1 < 10) carts.Add((ShopperSimulation.SessionCookie(response) ?? cookie!, adds + 1));
            }),
            new(CapacityModel.Leaderboard, 1, () => ExpectOkAsync(http, HttpMethod.Get, "/api/analytics/leaderboards/most-viewed?window=24h&top=10")),
            new(CapacityModel.Checkout, 2, async () =>
            {
                using var added = await ExpectOkAsync(http, HttpMethod.Post, "/api/cart/items", null, new { productId = zipf.Next(Random.Shared), quantity = 1 });
                (await ExpectOkAsync(http, HttpMethod.Post, "/api/cart/checkout", ShopperSimulation.SessionCookie(added), new { email = "bench@example.com" }, Guid.NewGuid().ToString("N"))).Dispose();
            }),
        ];
    }

    private static async Task ExpectOkAsync(HttpClient http, HttpMethod method, string path) =>
        (await ExpectOkAsync(http, method, path, null, null)).Dispose();

    private static async Task<HttpResponseMessage> ExpectOkAsync(HttpClient http, HttpMethod method, string path, string? cookie, object? body, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (cookie is not null) request.Headers.Add("Cookie", cookie);
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        var response = await http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var text = await response.Content.ReadAsStringAsync();
            response.Dispose();
            throw new InvalidOperationException($"{method} {path}: {(int)response.StatusCode} {text}");
        }
        return response;
    }

    // Until every service's CPU is back near its idle rate: work a route leaves behind (a collection of the garbage its
    // requests made, a queue draining) counts for that route, not for the next one.
    private static async Task QuietAsync(ResourceMeter meter, Usage idlePerSecond)
    {
        var deadline = Stopwatch.StartNew();
        var last = await meter.ReadAsync();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            var clock = Stopwatch.StartNew();
            await Task.Delay(500);
            var now = await meter.ReadAsync();
            var perSecond = now.Minus(last).Times(1 / clock.Elapsed.TotalSeconds);
            last = now;
            if (perSecond.ServiceCpuSeconds.All(s => s.Value <= 2 * idlePerSecond.ServiceCpuSeconds.GetValueOrDefault(s.Key) + 0.05))
            {
                return;
            }
        }
    }

    // Every event the route published applied (bounded: a stuck consumer fails the run rather than under-counting the
    // views' cost).
    private static async Task AnalyticsCaughtUpAsync(IConnectionMultiplexer valkey)
    {
        var deadline = Stopwatch.StartNew();
        while (!await BenchApp.AnalyticsDrainedAsync(valkey))
        {
            if (deadline.Elapsed > TimeSpan.FromMinutes(2))
            {
                throw new TimeoutException("analytics did not apply every event within 2 minutes");
            }
            await Task.Delay(200);
        }
    }
}

/// <summary>One route's measured run and what one operation of it cost each part (idle cost taken off).</summary>
public sealed record RouteCost(string Route, int RequestsPerOperation, Measurement Load, Usage PerOperation);
