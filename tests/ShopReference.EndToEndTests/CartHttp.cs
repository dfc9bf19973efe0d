using System.Net.Http.Json;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Requests to the cart with cookies handled by hand, as a browser would: the factory's pooled handlers would share
/// one cookie jar between tests, and the concurrency tests need many requests on one session.
/// </summary>
internal static class CartHttp
{
    /// <summary>A client without a cookie jar, to the gateway or straight to a service (past the gateway's quotas).</summary>
    public static HttpClient Client(Uri baseAddress) => new(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = baseAddress };

    public static Task<HttpResponseMessage> SendAsync(this HttpClient client, HttpMethod method, string path, string? cookie,
        object? body, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (cookie is not null) request.Headers.Add("Cookie", cookie);
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        return client.SendAsync(request, cancellationToken);
    }

    /// <summary>The <c>name=value</c> part of a cookie the response sets, or null.</summary>
    public static string? SetCookie(HttpResponseMessage response, string name = ShopReference.Shoppers.ShopClient.SessionCookieName) =>
        ShopReference.Shoppers.ShopClient.SetCookie(response, name);
}
