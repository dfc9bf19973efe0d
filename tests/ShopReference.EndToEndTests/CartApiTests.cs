using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>The cart through the gateway, with the session cookie handled by hand as a browser would.</summary>
[Collection(ShopAppCollection.Name)]
public sealed class CartApiTests(ShopAppFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Adds_accumulate_in_the_session_the_cookie_names()
    {
        using var gateway = Gateway();

        using var first = await SendAsync(gateway, HttpMethod.Post, "/api/cart/items", cookie: null, new { productId = 42, quantity = 1 });
        Assert.True(first.StatusCode == HttpStatusCode.OK, $"{first.StatusCode}: {await first.Content.ReadAsStringAsync(Ct)}");
        var cookie = SessionCookie(first);
        using var second = await SendAsync(gateway, HttpMethod.Post, "/api/cart/items", cookie, new { productId = 42, quantity = 2 });
        using var cart = await SendAsync(gateway, HttpMethod.Get, "/api/cart", cookie);

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.NotNull(cookie);
        var line = (await cart.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("lines")[0];
        Assert.Equal((42, 3), (line.GetProperty("productId").GetInt32(), line.GetProperty("quantity").GetInt32()));
        Assert.Equal(("Product 42", 564.42m), (line.GetProperty("name").GetString(), line.GetProperty("price").GetDecimal())); // from the catalog
    }

    [Fact]
    public async Task An_unknown_product_is_a_404_problem_and_adds_nothing()
    {
        using var gateway = Gateway();

        using var response = await SendAsync(gateway, HttpMethod.Post, "/api/cart/items", cookie: null, new { productId = 987654, quantity = 1 });

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Null(SessionCookie(response));
    }

    [Fact]
    public async Task A_forged_session_cookie_reads_an_empty_cart_and_a_write_starts_a_fresh_session()
    {
        using var gateway = Gateway();
        const string forged = "shop.sid=made-up-by-the-client";

        using var read = await SendAsync(gateway, HttpMethod.Get, "/api/cart", forged);
        using var write = await SendAsync(gateway, HttpMethod.Post, "/api/cart/items", forged, new { productId = 7, quantity = 1 });

        Assert.Equal(0, (await read.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("lines").GetArrayLength());
        Assert.True(write.StatusCode == HttpStatusCode.OK, $"{write.StatusCode}: {await write.Content.ReadAsStringAsync(Ct)}");
        var issued = SessionCookie(write);
        Assert.NotNull(issued);
        Assert.NotEqual(forged, issued);
    }

    [Theory]
    [InlineData("{\"productId\": 42, \"quantity\": 0}")]
    [InlineData("{\"productId\": -1, \"quantity\": 1}")]
    [InlineData("{\"productId\": 42, \"quantity\": 100000}")]
    [InlineData("{ not json")]
    public async Task Bad_input_is_a_400_problem(string body)
    {
        using var gateway = Gateway();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/cart/items") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };

        using var response = await gateway.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    // Each test speaks as a client address of its own: on the shared loopback address the tests' writes would share
    // one write quota with each other and with every other class that calls the gateway from loopback.
    private HttpClient Gateway() => fixture.Shop.GatewayAsNewClient(out _);

    private Task<HttpResponseMessage> SendAsync(HttpClient gateway, HttpMethod method, string path, string? cookie, object? body = null) =>
        gateway.SendAsync(method, path, cookie, body, Ct);

    private static string? SessionCookie(HttpResponseMessage response) => CartHttp.SetCookie(response);
}

/// <summary>The dashboard's live-sessions command, run as a user would run it.</summary>
[Collection(ShopAppCollection.Name)]
public sealed class LiveSessionsCommandTests(ShopAppFixture fixture)
{
    [Fact]
    public async Task The_command_counts_a_session_that_was_just_started()
    {
        var ct = TestContext.Current.CancellationToken;
        var commands = fixture.Shop.App.Services.GetRequiredService<ResourceCommandService>();
        var replica = (await fixture.Shop.WaitForHealthyInstancesAsync("cart-session", 2, TimeSpan.FromSeconds(30))).First();
        var before = SessionsIn((await commands.ExecuteCommandAsync(replica, "live-sessions", ct)).Message);
        using var cart = CartHttp.Client(fixture.Shop.App.GetEndpoint("cart-session", "http"));
        using var added = await cart.SendAsync(HttpMethod.Post, "/api/cart/items", null, new { productId = 5, quantity = 1 }, ct);

        var result = await commands.ExecuteCommandAsync(replica, "live-sessions", ct);

        Assert.True(added.StatusCode == HttpStatusCode.OK, $"{added.StatusCode}: {await added.Content.ReadAsStringAsync(ct)}");
        Assert.True(result.Success, result.Message);
        Assert.True(SessionsIn(result.Message) >= before + 1, result.Message);
    }

    private static int SessionsIn(string? message) =>
        int.Parse(System.Text.RegularExpressions.Regex.Match(message ?? "", @"^(\d+) live cart sessions").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
}
