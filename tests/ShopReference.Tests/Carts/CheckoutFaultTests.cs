using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.Analytics.Counting;
using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Carts;
using ShopReference.CartSession.Extensions;
using ShopReference.CartSession.Orders;
using ShopReference.Testing;
using ShopReference.Tests.Analytics;
using ShopReference.Tests.Infrastructure;
using ShopReference.Contracts.Events;
using ShopReference.Valkey.Resilience;
using StackExchange.Redis;

namespace ShopReference.Tests.Carts;

/// <summary>
/// Checkout when a connection dies at the worst moment, and the outbox when Valkey is down: honest answers, one order,
/// one subtraction from the cart, one count in analytics.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class CheckoutFaultTests(ServersFixture fixture)
{
    private const long Product = 10;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_database_connection_lost_at_commit_is_an_unknown_outcome_and_a_retry_gives_the_order_once_and_settles_the_cart_once()
    {
        await using var catalog = await InProcessService.CatalogAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:catalogdb"] = await fixture.Postgres.CreateDatabaseAsync("commitcatalog"),
            ["Catalog:ChangeFeed:Slot"] = "catalog_cache_" + Guid.NewGuid().ToString("N")[..8],
        });
        var cartdb = new NpgsqlConnectionStringBuilder(await fixture.Postgres.CreateDatabaseAsync("commitcart"));
        await using var database = new TcpFaultProxy(cartdb.Port);
        await using var cart = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:cartdb"] = new NpgsqlConnectionStringBuilder(cartdb.ConnectionString) { Port = database.Port }.ConnectionString,
            ["services:catalog:http:0"] = catalog.Address.ToString(),
        });
        using var http = cart.Client();
        await Eventually.UntilAsync(async () => (await catalog.Client().GetAsync("/health", Ct)).IsSuccessStatusCode && (await http.GetAsync("/health", Ct)).IsSuccessStatusCode,
            TimeSpan.FromSeconds(60), "the services never became ready", TimeSpan.FromMilliseconds(200), Ct);
        using var added = await SendAsync(http, HttpMethod.Post, "/api/cart/items", null, new { productId = Product, quantity = 3 });
        var cookie = added.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        // The COMMIT of the order's transaction reaches PostgreSQL; its answer never comes back.
        database.CutAfterReplyTo(armedBy: "insert into outbox", trigger: "COMMIT");
        using var lost = await SendAsync(http, HttpMethod.Post, "/api/cart/checkout", cookie, new { email = "a@example.com" }, key: "k-commit");
        Assert.True(database.Fired, "the cut never fired");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, lost.StatusCode);
        Assert.Contains("outcome is unknown", (await lost.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("detail").GetString());
        Assert.Equal(1L, await OrdersAsync(cartdb.ConnectionString)); // it was committed after all
        database.Restore();

        using (var more = await SendAsync(http, HttpMethod.Post, "/api/cart/items", cookie, new { productId = Product, quantity = 2 })) // meanwhile
        {
            Assert.Equal(HttpStatusCode.OK, more.StatusCode);
        }
        using var retry = await SendAsync(http, HttpMethod.Post, "/api/cart/checkout", cookie, new { email = "a@example.com" }, key: "k-commit");
        using var again = await SendAsync(http, HttpMethod.Post, "/api/cart/checkout", cookie, new { email = "a@example.com" }, key: "k-commit");
        using var view = await SendAsync(http, HttpMethod.Get, "/api/cart", cookie, null);

        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        var (first, second) = (await retry.Content.ReadFromJsonAsync<JsonElement>(Ct), await again.Content.ReadFromJsonAsync<JsonElement>(Ct));
        Assert.Equal(first.GetProperty("id").GetInt64(), second.GetProperty("id").GetInt64());
        Assert.Equal(1L, await OrdersAsync(cartdb.ConnectionString));
        var lines = (await view.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("lines");
        Assert.Equal(2, lines.EnumerateArray().Single(l => l.GetProperty("productId").GetInt64() == Product).GetProperty("quantity").GetInt32()); // 3 + 2 - 3, once
    }

    [Fact]
    public async Task An_order_committed_while_valkey_is_down_waits_in_the_outbox_and_is_counted_exactly_once_after_it_returns()
    {
        fixture.RequireOneValkeyProcess("a proxy resets its connections");
        await using var proxy = new TcpFaultProxy(fixture.Valkey.Port);
        await using var valkey = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{proxy.Port},password={fixture.Valkey.Password},abortConnect=false,connectTimeout=1000,syncTimeout=1000,asyncTimeout=1000");
        await using var admin = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(admin);
        await using var dataSource = NpgsqlDataSource.Create(await fixture.Postgres.CreateDatabaseAsync("outbox"));
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var orders = new OrdersDatabase(dataSource, NullLogger<OrdersDatabase>.Instance);
        await orders.InitializeAsync(Ct);
        var publisher = new EventPublisher(valkey, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<EventPublisher>.Instance);
        var relay = new OutboxRelay(dataSource, publisher, orders, NullLogger<OutboxRelay>.Instance);

        proxy.Cut();
        var orderId = await orders.InsertAsync("session-hash", "key", "f00d", "a@example.com", [new OrderLine(77, "Product 77", 1m, 4)], "visitor-1", Ct);
        var down = await Assert.ThrowsAnyAsync<RedisException>(() => relay.RelayAsync(Ct));
        Assert.True(ValkeyFailures.IsUnavailable(down));
        Assert.Equal(1L, await ScalarAsync(dataSource, "select count(*) from outbox")); // kept, not dropped

        proxy.Restore();
        await Eventually.UntilAsync(async () =>
        {
            try
            {
                return await relay.RelayAsync(Ct) == 1;
            }
            catch (Exception ex) when (ValkeyFailures.IsUnavailable(ex)) // RedisTimeoutException is no RedisException
            {
                return false; // the client is still reconnecting
            }
        }, TimeSpan.FromSeconds(30), "the outbox was never relayed", TimeSpan.FromMilliseconds(200), Ct);
        Assert.Equal(0L, await ScalarAsync(dataSource, "select count(*) from outbox"));
        Assert.Equal(0, await relay.RelayAsync(Ct));

        // A relay that died after appending and before deleting appends again: the same event, the same id.
        await publisher.AppendAsync(new AnalyticsEvent($"order-{orderId}", EventTypes.OrderPlaced, DateTimeOffset.UtcNow, "visitor-1", Lines: [(77, 4)]));
        var consumer = new EventConsumer(admin, "outbox-test", new EventConsumerOptions(), NullLogger.Instance);
        await consumer.DrainAsync();

        Assert.Equal((1, 1), (consumer.Counters.Applied, consumer.Counters.Duplicates));
        Assert.Equal(4, (await AnalyticsKit.BucketAsync(admin, "sold"))[77]);
    }

    private async Task<long> OrdersAsync(string connectionString)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        return await ScalarAsync(dataSource, "select count(*) from orders");
    }

    private async Task<long> ScalarAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string? cookie, object? body, string? key = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (cookie is not null) request.Headers.Add("Cookie", cookie);
        if (key is not null) request.Headers.Add("Idempotency-Key", key);
        var response = await http.SendAsync(request, Ct);
        await response.Content.LoadIntoBufferAsync(Ct);
        return response;
    }
}
