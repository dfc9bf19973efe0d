using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Extensions;
using ShopReference.Hosting;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.CartSession.Carts;
using StackExchange.Redis;

namespace ShopReference.Tests.Carts;

/// <summary>
/// The cart service, hosted in process, when its dependencies fail for real: the catalog's port refuses connections,
/// and Valkey is stopped under it. Reads keep working without the catalog; checkout, adding or changing a line (which
/// the catalog must confirm) and anything needing Valkey answer 503 ProblemDetails with Retry-After; nothing is
/// half-written; it recovers by itself.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class CartServiceFailureTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Without_the_catalog_the_cart_reads_and_checkout_is_a_503_and_without_valkey_everything_is_a_503()
    {
        await using var valkey = await TestValkeyServer.StartAsync(); // its own server: this test stops it
        var connectionString = valkey.FastFailConnectionString;
        await using var service = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = connectionString,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("cartfailure"),
            ["services:catalog:http:0"] = $"http://127.0.0.1:{LocalPorts.NextFree()}", // nothing listens there
        });
        await using var connection = await ConnectionMultiplexer.ConnectAsync(connectionString);
        var store = new CartStore(connection, new CartLimits());
        var session = await store.CreateSessionAsync();
        await store.AddAsync(session, 42, 2); // a line added while the catalog could still confirm it
        using var http = service.Client();
        var cookie = $"shop.sid={session}";

        using var read = await SendAsync(http, HttpMethod.Get, "/api/cart", cookie);
        using var checkout = await SendAsync(http, HttpMethod.Post, "/api/cart/checkout", cookie, new { email = "a@example.com" }, key: "k1");
        using var add = await SendAsync(http, HttpMethod.Post, "/api/cart/items", cookie, new { productId = 7, quantity = 1 });
        using var set = await SendAsync(http, HttpMethod.Put, "/api/cart/items/42", cookie, new { quantity = 3 });

        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        var line = (await read.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("lines")[0];
        Assert.Equal((42, 2, JsonValueKind.Null), (line.GetProperty("productId").GetInt32(), line.GetProperty("quantity").GetInt32(), line.GetProperty("price").ValueKind));
        await AssertUnavailableAsync(checkout);
        // A line is never added or changed unchecked: the catalog cannot confirm the product, so a 503 says nothing changed.
        await AssertUnavailableAsync(add);
        await AssertUnavailableAsync(set);
        Assert.Contains("nothing was changed", await add.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(new Dictionary<long, int> { [42] = 2 }, await store.GetAsync(session)); // nothing taken out of or put into the cart

        await valkey.StopAsync();
        using var readDown = await SendAsync(http, HttpMethod.Get, "/api/cart", cookie);
        using var removeDown = await SendAsync(http, HttpMethod.Put, "/api/cart/items/42", cookie, new { quantity = 0 });
        await AssertUnavailableAsync(readDown);
        await AssertUnavailableAsync(removeDown);

        await valkey.RestartAsync();
        await Eventually.UntilAsync(async () =>
        {
            using var again = await SendAsync(http, HttpMethod.Get, "/api/cart", cookie);
            return again.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(30), "the cart answering again after Valkey returned", cancellationToken: Ct);
    }

    [Fact]
    public async Task Without_valkey_the_session_preferences_are_a_503_never_the_defaults_and_a_change_is_not_acknowledged()
    {
        await using var valkey = await TestValkeyServer.StartAsync(persistent: true); // its own: stopped, and back with its data
        await using var service = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey.FastFailConnectionString,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("prefsfailure"),
            ["services:catalog:http:0"] = $"http://127.0.0.1:{LocalPorts.NextFree()}",
        });
        using var http = service.Client();
        using var set = await SendAsync(http, HttpMethod.Put, "/api/cart/preferences", "", new { currency = "GBP" });
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        var cookie = set.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(PreferencesApi.CookieName + "=", StringComparison.Ordinal)).Split(';')[0];

        await valkey.StopAsync();
        // The stock session swallows the failed read: it would answer EUR, and answer OK to a change it then drops.
        using var readDown = await SendAsync(http, HttpMethod.Get, "/api/cart/preferences", cookie);
        using var changeDown = await SendAsync(http, HttpMethod.Put, "/api/cart/preferences", cookie, new { currency = "USD" });
        await AssertUnavailableAsync(readDown);
        await AssertUnavailableAsync(changeDown);

        await valkey.RestartAsync();
        var currency = "";
        await Eventually.UntilAsync(async () =>
        {
            using var again = await SendAsync(http, HttpMethod.Get, "/api/cart/preferences", cookie);
            if (again.StatusCode != HttpStatusCode.OK) return false;
            currency = (await again.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("currency").GetString()!;
            return true;
        }, TimeSpan.FromSeconds(30), "the preferences answering again after Valkey returned", cancellationToken: Ct);
        Assert.Equal("GBP", currency);
    }

    private async Task AssertUnavailableAsync(HttpResponseMessage response)
    {
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After is missing");
    }

    private Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string cookie, object? body = null, string? key = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (cookie.Length > 0) request.Headers.Add("Cookie", cookie);
        if (key is not null) request.Headers.Add(CheckoutApi.IdempotencyKeyHeader, key);
        return http.SendAsync(request, Ct);
    }
}
