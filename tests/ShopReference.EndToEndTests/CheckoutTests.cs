using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using ShopReference.Valkey;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Idempotent checkout against the running app. The concurrency tests talk to each cart-session replica by its own
/// address, alternating, so the load really is split over two instances; through the gateway the checkout policy
/// would, rightly, refuse 49 of 50.
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class CheckoutTests(ShopAppFixture fixture)
{
    private const int Product = 4242; // "Product 4242" at 744.42 in the seeded catalog
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Fifty_concurrent_checkouts_with_one_key_place_one_order_and_answer_it_identically()
    {
        using var cart = CartHttp.Client(fixture.Shop.App.GetEndpoint("cart-session", "http"));
        var replicas = (await fixture.Shop.ReplicaAddressesAsync("cart-session", 2, TimeSpan.FromMinutes(1))).Select(CartHttp.Client).ToArray();
        var cookie = await CartWithAsync(cart, quantity: 3);
        var key = Guid.NewGuid().ToString();
        var body = new { email = "buyer@example.com" };

        // The retries alternate between the two replicas: the claim, not a process-local lock, makes them agree.
        using var start = new SemaphoreSlim(0);
        var checkouts = Enumerable.Range(0, 50).Select(async i =>
        {
            await start.WaitAsync(Ct);
            using var response = await replicas[i % 2].SendAsync(HttpMethod.Post, "/api/cart/checkout", cookie, body, Ct, key);
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync(Ct), Replayed: response.Headers.Contains("Idempotent-Replayed"));
        }).ToArray();
        start.Release(checkouts.Length);
        var answers = await Task.WhenAll(checkouts);

        Assert.All(answers, a => Assert.True(a.StatusCode == HttpStatusCode.OK, $"{a.StatusCode}: {a.Body}"));
        Assert.Single(answers.Select(a => a.Body).Distinct());
        Assert.Equal(49, answers.Count(a => a.Replayed));
        Assert.Equal(1, await OrdersOfSessionAsync(cookie));
        var order = JsonSerializer.Deserialize<JsonElement>(answers[0].Body);
        var line = order.GetProperty("lines")[0];
        Assert.Equal((Product, 3, 744.42m), (line.GetProperty("productId").GetInt32(), line.GetProperty("quantity").GetInt32(), line.GetProperty("unitPrice").GetDecimal()));
        Assert.Equal(2233.26m, order.GetProperty("total").GetDecimal());
        Assert.Equal(0, await LinesInCartAsync(cart, cookie)); // the ordered lines left the cart

        // A retry long after (the claim answered from Valkey) is the same order, still one row.
        using var later = await cart.SendAsync(HttpMethod.Post, "/api/cart/checkout", cookie, body, Ct, key);
        Assert.Equal(answers[0].Body, await later.Content.ReadAsStringAsync(Ct));
        Assert.Equal(1, await OrdersOfSessionAsync(cookie));
        foreach (var replica in replicas) replica.Dispose();
    }

    [Fact]
    public async Task The_same_key_with_another_body_is_a_422_and_places_nothing()
    {
        using var cart = CartHttp.Client(fixture.Shop.App.GetEndpoint("cart-session", "http"));
        var cookie = await CartWithAsync(cart, quantity: 1);
        var key = Guid.NewGuid().ToString();
        using var first = await cart.SendAsync(HttpMethod.Post, "/api/cart/checkout", cookie, new { email = "a@example.com" }, Ct, key);
        await CartWithAsync(cart, quantity: 1, cookie);

        using var reused = await cart.SendAsync(HttpMethod.Post, "/api/cart/checkout", cookie, new { email = "b@example.com" }, Ct, key);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.Equal("application/problem+json", reused.Content.Headers.ContentType?.MediaType);
        Assert.Equal(1, await OrdersOfSessionAsync(cookie));
        Assert.Equal(1, await LinesInCartAsync(cart, cookie)); // the second cart is untouched
    }

    [Theory]
    [InlineData(null, "{\"email\":\"a@example.com\"}")] // no key
    [InlineData("", "{\"email\":\"a@example.com\"}")] // empty key
    [InlineData("k-65-characters-long-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "{\"email\":\"a@example.com\"}")]
    [InlineData("key with spaces", "{\"email\":\"a@example.com\"}")]
    [InlineData("valid-key", "{\"email\":\"not-an-address\"}")]
    [InlineData("valid-key", "{ not json")]
    public async Task A_bad_key_or_body_is_a_400_problem_and_places_nothing(string? key, string body)
    {
        using var cart = CartHttp.Client(fixture.Shop.App.GetEndpoint("cart-session", "http"));
        var cookie = await CartWithAsync(cart, quantity: 1);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/cart/checkout") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Add("Cookie", cookie);
        if (key is not null) request.Headers.TryAddWithoutValidation("Idempotency-Key", key);

        using var response = await cart.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, await OrdersOfSessionAsync(cookie));
        Assert.Equal(1, await LinesInCartAsync(cart, cookie));
    }

    [Fact]
    public async Task An_empty_cart_is_a_409_and_checkout_goes_through_the_gateway_s_checkout_policy()
    {
        using var gateway = CartHttp.Client(fixture.Shop.App.GetEndpoint("rate-limit", "http"));

        using var response = await gateway.SendAsync(HttpMethod.Post, "/api/cart/checkout", cookie: null, new { email = "a@example.com" }, Ct, "empty-cart");

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.StartsWith("\"checkout\"", response.Headers.GetValues("RateLimit-Policy").Single());
    }

    [Fact]
    public async Task Two_hundred_concurrent_adds_over_both_instances_lose_none_and_the_session_blob_comparison_is_reported()
    {
        // Each replica by its own address, so the load really is split between two instances.
        var replicas = (await fixture.Shop.ReplicaAddressesAsync("cart-session", 2, TimeSpan.FromMinutes(1))).Select(CartHttp.Client).ToArray();
        try
        {
            var operatorToken = await fixture.Shop.TokenAsync("operator", Ct); // the instance is shown to operators only
            var served = await Task.WhenAll(replicas.Select(async r =>
            {
                using var wiring = new HttpRequestMessage(HttpMethod.Get, "/api/cart/wiring") { Headers = { Authorization = new("Bearer", operatorToken) } };
                using var response = await r.SendAsync(wiring, Ct);
                return (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("instance").GetString();
            }));
            Assert.Equal(2, served.Distinct().Count());
            var cookie = await CartWithAsync(replicas[0], quantity: 1, product: 70);
            // Four lines of 50 (a line holds at most 99): 199 more concurrent adds of one item each, alternating replicas.
            await ConcurrentlyAsync(199, i => replicas[i % 2].SendAsync(HttpMethod.Post, "/api/cart/items", cookie, new { productId = 70 + (i + 1) % 4, quantity = 1 }, Ct));

            using var view = await replicas[1].SendAsync(HttpMethod.Get, "/api/cart", cookie, null, Ct);
            var lines = (await view.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("lines").EnumerateArray().Select(l => l.GetProperty("quantity").GetInt32()).ToList();

            // The same shape of load on ASP.NET Core's session: 20 concurrent "remember this product" on one session.
            using var first = await replicas[0].SendAsync(HttpMethod.Post, "/api/cart/preferences/recently-viewed", null, new { productId = 1 }, Ct);
            var prefs = CartHttp.SetCookie(first, "shop.prefs");
            Assert.NotNull(prefs);
            await ConcurrentlyAsync(19, i => replicas[i % 2].SendAsync(HttpMethod.Post, "/api/cart/preferences/recently-viewed", prefs, new { productId = i + 2 }, Ct));
            using var read = await replicas[0].SendAsync(HttpMethod.Get, "/api/cart/preferences", prefs, null, Ct);
            var remembered = (await read.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("recentlyViewed").GetArrayLength();
            TestContext.Current.TestOutputHelper?.WriteLine($"Valkey hash cart: {lines.Sum()}/200 adds kept. ASP.NET session blob: {remembered}/20 writes kept ({20 - remembered} lost).");

            Assert.Equal([50, 50, 50, 50], lines);
        }
        finally
        {
            foreach (var replica in replicas) replica.Dispose();
        }
    }

    private async Task ConcurrentlyAsync(int count, Func<int, Task<HttpResponseMessage>> send)
    {
        using var start = new SemaphoreSlim(0);
        var requests = Enumerable.Range(0, count).Select(async i =>
        {
            await start.WaitAsync(Ct);
            using var response = await send(i);
            Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
        }).ToArray();
        start.Release(count);
        await Task.WhenAll(requests);
    }

    private async Task<string> CartWithAsync(HttpClient cart, int quantity, string? cookie = null, int product = Product)
    {
        using var response = await cart.SendAsync(HttpMethod.Post, "/api/cart/items", cookie, new { productId = product, quantity }, Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
        return cookie ?? CartHttp.SetCookie(response) ?? throw new InvalidOperationException("No session cookie was issued.");
    }

    private async Task<int> LinesInCartAsync(HttpClient cart, string cookie)
    {
        using var response = await cart.SendAsync(HttpMethod.Get, "/api/cart", cookie, null, Ct);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("lines").GetArrayLength();
    }

    private async Task<long> OrdersOfSessionAsync(string cookie)
    {
        await using var connection = new NpgsqlConnection(await fixture.Shop.App.GetConnectionStringAsync("cartdb", Ct));
        await connection.OpenAsync(Ct);
        await using var count = new NpgsqlCommand("select count(*) from orders where session_hash = $1", connection)
        {
            Parameters = { new() { Value = KeySchema.Sha256Hex(cookie["shop.sid=".Length..]) } },
        };
        return (long)(await count.ExecuteScalarAsync(Ct))!;
    }
}
