using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ShopReference.Hosting;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

/// <summary>
/// The four services, hosted in process on one Valkey that is put into each transient state a real server reaches — a
/// replica's READONLY, OOM at the memory limit, BUSY behind a long script — and brought back. Each service keeps its
/// documented behaviour for each: the catalog serves from PostgreSQL, the cart and analytics answer 503 with
/// Retry-After, the gateway's fail-open policy admits and its fail-closed policy answers 503; never a 500. (LOADING,
/// a server reading a large dataset at start, is classified the same way; it is not reproduced here.)
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class TransientRepliesTests(ServersFixture fixture) : IAsyncLifetime
{
    private TestValkeyServer _valkey = null!;
    private ConnectionMultiplexer _admin = null!;
    private readonly List<InProcessService> _services = [];
    private InProcessService _catalog = null!, _cart = null!, _analytics = null!, _gateway = null!;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        // Scripts that run longer than 100 ms make the server answer BUSY (the default would be 5 s).
        _valkey = await TestValkeyServer.StartAsync(settings: ["lua-time-limit 100"]);
        _admin = await ConnectionMultiplexer.ConnectAsync(_valkey.ConnectionString + ",allowAdmin=true");
        var valkey = _valkey.FastFailConnectionString;
        _services.Add(_catalog = await InProcessService.CatalogAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey,
            ["ConnectionStrings:catalogdb"] = await fixture.Postgres.CreateDatabaseAsync("transientcatalog"),
            ["Catalog:ChangeFeed:Slot"] = "catalog_cache_" + Guid.NewGuid().ToString("N")[..8],
        }));
        _services.Add(_cart = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("transientcart"),
            ["services:catalog:http:0"] = _catalog.Address.ToString(),
        }));
        _services.Add(_analytics = await InProcessService.AnalyticsAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey,
            ["ConnectionStrings:analyticsdb"] = await fixture.Postgres.CreateDatabaseAsync("transientanalytics"),
            ["services:catalog:http:0"] = _catalog.Address.ToString(),
        }));
        // The gateway with its own policies (appsettings.json): anon-read fails open, write fails closed.
        _services.Add(_gateway = await InProcessService.GatewayAsync(new Dictionary<string, string?> { ["ConnectionStrings:valkey"] = valkey }));
        foreach (var service in _services)
        {
            using var http = service.Client();
            await Eventually.UntilAsync(async () => (await http.GetAsync("/health", Ct)).IsSuccessStatusCode, TimeSpan.FromSeconds(60),
                $"{service.Address} never became ready", TimeSpan.FromMilliseconds(200), Ct);
        }
    }

    [Fact]
    public async Task A_valkey_that_became_a_read_only_replica_gets_each_service_s_documented_answer()
    {
        // A replica whose primary is gone: it still serves reads, and refuses every write with READONLY.
        await _admin.GetServers().Single().ExecuteAsync("REPLICAOF", "127.0.0.1", LocalPorts.NextFree().ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            await AssertDocumentedBehaviourAsync("READONLY");
        }
        finally
        {
            await _admin.GetServers().Single().ExecuteAsync("REPLICAOF", "NO", "ONE");
        }
        await AssertRecoveredAsync();
    }

    [Fact]
    public async Task A_valkey_at_its_memory_limit_gets_each_service_s_documented_answer()
    {
        var server = _admin.GetServers().Single();
        await server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await server.ConfigSetAsync("maxmemory", "1"); // every write that could grow memory is now refused with OOM
        try
        {
            await AssertDocumentedBehaviourAsync("OOM");
        }
        finally
        {
            await server.ConfigSetAsync("maxmemory", "0");
        }
        await AssertRecoveredAsync();
    }

    [Fact]
    public async Task A_valkey_busy_with_a_long_script_gets_each_service_s_documented_answer()
    {
        // The script never returns on its own; every other client gets BUSY until it is killed.
        await using var runner = await RespClient.ConnectAsync("127.0.0.1", _valkey.Port, _valkey.Password, Ct);
        await runner.WriteAsync(Ct, "EVAL", "while true do end", "0");
        await Eventually.UntilAsync(async () => (await RawResp.SendAsync("127.0.0.1", _valkey.Port, _valkey.Password, "PING", Ct)).StartsWith("-BUSY", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "the server never became busy", cancellationToken: Ct);
        try
        {
            await AssertDocumentedBehaviourAsync("BUSY");
        }
        finally
        {
            await RawResp.SendAsync("127.0.0.1", _valkey.Port, _valkey.Password, "SCRIPT KILL", Ct);
        }
        await AssertRecoveredAsync();
    }

    private async Task AssertDocumentedBehaviourAsync(string state)
    {
        // The catalog reads PostgreSQL when Valkey cannot serve (a hit still comes from Valkey where reads work).
        using (var product = await _catalog.Client().GetAsync("/api/catalog/products/5", Ct))
        {
            Assert.True(product.StatusCode == HttpStatusCode.OK, $"{state}: catalog read answered {(int)product.StatusCode}");
            Assert.Equal("SKU-000005", (await product.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("sku").GetString());
        }
        // A new cart and an uncached leaderboard both need a write: 503 with Retry-After.
        await AssertUnavailableAsync(state, await _cart.Client().PostAsJsonAsync("/api/cart/items", new { productId = 5, quantity = 1 }, Ct));
        await AssertUnavailableAsync(state, await _analytics.Client().GetAsync($"/api/analytics/leaderboards/most-viewed?window=1h&top={Random.Shared.Next(1, 100)}", Ct));
        // The gateway: a fail-open policy decides in process and admits; a fail-closed one refuses with 503.
        using (var open = await _gateway.Client().GetAsync("/api/ratelimit/policies", Ct))
        {
            Assert.True(open.StatusCode == HttpStatusCode.OK, $"{state}: fail-open policy answered {(int)open.StatusCode}");
        }
        await AssertUnavailableAsync(state, await _gateway.Client().PostAsync("/api/auth/token", new FormUrlEncodedContent([new("grant_type", "client_credentials")]), Ct));
    }

    private async Task AssertUnavailableAsync(string state, HttpResponseMessage response)
    {
        using (response)
        {
            var what = $"{state}: {response.RequestMessage!.Method} {response.RequestMessage.RequestUri!.AbsolutePath} answered {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Ct)}";
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, what);
            Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", what);
            Assert.True(response.Headers.RetryAfter is not null, what);
        }
    }

    private async Task AssertRecoveredAsync()
    {
        await Eventually.UntilAsync(async () =>
        {
            using var added = await _cart.Client().PostAsJsonAsync("/api/cart/items", new { productId = 5, quantity = 1 }, Ct);
            return added.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(30), "the cart never worked again", TimeSpan.FromMilliseconds(200), Ct);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var service in _services)
        {
            await service.DisposeAsync();
        }
        await _admin.DisposeAsync();
        await _valkey.DisposeAsync();
    }
}
