using System.Net;
using System.Text;
using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Carts;
using ShopReference.Hosting;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

/// <summary>
/// Every body is bounded by its route, not by the server's 30 MB: a body over the limit is a 413 ProblemDetails whether
/// it announces its length or arrives chunked, and the request changes nothing.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class RequestBodyLimitTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_cart_body_over_the_cart_s_limit_is_a_413_announced_or_chunked_and_the_cart_is_unchanged()
    {
        await using var cart = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("bodylimit"),
            ["services:catalog:http:0"] = $"http://127.0.0.1:{LocalPorts.NextFree()}",
        });
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var store = new CartStore(connection, new CartLimits());
        var session = await store.CreateSessionAsync();
        await store.AddAsync(session, 42, 2);
        using var http = cart.Client();
        // A valid add with one member too many, which the JSON binding would otherwise ignore.
        var body = $"{{\"productId\":42,\"quantity\":1,\"note\":\"{new string('x', CartApi.MaxBodyBytes)}\"}}";

        using var announced = await SendAsync(http, HttpMethod.Post, "/api/cart/items", body, chunked: false, $"shop.sid={session}");
        using var chunked = await SendAsync(http, HttpMethod.Post, "/api/cart/items", body, chunked: true, $"shop.sid={session}");

        await AssertTooLargeAsync(announced);
        await AssertTooLargeAsync(chunked);
        Assert.Equal(new Dictionary<long, int> { [42] = 2 }, await store.GetAsync(session));
    }

    /// <summary>
    /// A refused upload the size a hostile client sends (800 KB) is answered with its 413, and the same connection then
    /// serves the next request: the unread body is discarded, not left to reset the client mid-send.
    /// </summary>
    [Fact]
    public async Task A_refused_upload_is_answered_and_its_connection_serves_the_next_request()
    {
        await using var cart = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("bodydrain"),
            ["services:catalog:http:0"] = $"http://127.0.0.1:{LocalPorts.NextFree()}",
        });
        // One connection, so the second request can only go over the first one's.
        using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = 1 }) { BaseAddress = cart.Address };
        var upload = "[" + string.Join(",", Enumerable.Repeat("{\"x\":1}", 100_000)) + "]";

        for (var i = 0; i < 3; i++)
        {
            using var refused = await http.SendAsync(Request(HttpMethod.Post, "/api/cart/items", upload, chunked: false, "application/json"), Ct);
            await AssertTooLargeAsync(refused);
            Assert.True(refused.Headers.ConnectionClose != true, "the connection was closed instead of discarding the body");
            using var next = await http.GetAsync("/api/cart", Ct);
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        }
    }

    /// <summary>
    /// The gateway applies the default to what it forwards and to its own routes: the catalog is not even running here,
    /// so only the gateway can have answered 413. (A chunked body it streams on, stopped at the limit; the service's own
    /// limit refuses it as well, as the cart test shows.)
    /// </summary>
    [Theory]
    [InlineData("PUT", "/api/catalog/products/1", "application/json")]
    [InlineData("POST", "/api/auth/token", "application/x-www-form-urlencoded")]
    public async Task A_body_over_the_default_limit_is_refused_by_the_gateway_itself(string method, string path, string contentType)
    {
        await using var gateway = await InProcessService.GatewayAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
        });
        using var http = gateway.Client();
        var body = new string('x', (int)new Microsoft.Extensions.Hosting.RequestBodyLimitOptions().DefaultBytes + 1);

        using var request = Request(new HttpMethod(method), path, body, chunked: false, contentType);
        using var response = await http.SendAsync(request, Ct);

        await AssertTooLargeAsync(response);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string body, bool chunked, string cookie)
    {
        using var request = Request(method, path, body, chunked, "application/json");
        request.Headers.Add("Cookie", cookie);
        return await http.SendAsync(request, Ct);
    }

    // Chunked: no Content-Length is sent, so the server finds the size only by reading.
    private static HttpRequestMessage Request(HttpMethod method, string path, string body, bool chunked, string contentType)
    {
        var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, contentType) };
        request.Headers.TransferEncodingChunked = chunked;
        return request;
    }

    private async Task AssertTooLargeAsync(HttpResponseMessage response)
    {
        Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} " +
            $"({(response.RequestMessage?.Headers.TransferEncodingChunked == true ? "chunked" : "announced")}): {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Ct)}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
