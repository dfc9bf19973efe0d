using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ShopReference.Shoppers;

/// <summary>An access token and how long the gateway says it stays valid.</summary>
public sealed record AccessToken(string Value, TimeSpan ExpiresIn);

/// <summary>
/// How a client outside the app talks to the shop, written once for every such client (the shopper simulation, the
/// AppHost's dashboard commands, the tests, the benchmarks): a token for an API client, the cart's session cookie, and
/// what the IETF <c>RateLimit</c> field says is left of a quota.
/// </summary>
public static partial class ShopClient
{
    /// <summary>The gateway's token endpoint (OAuth 2.0 client credentials).</summary>
    public const string TokenPath = "/api/auth/token";

    /// <summary>The cart's session cookie.</summary>
    public const string SessionCookieName = "shop.sid";

    /// <summary>
    /// A token for <paramref name="client"/> from the gateway, its key sent with HTTP Basic as RFC 6749 (2.3.1) says:
    /// each part form-encoded first. A refusal throws <see cref="HttpRequestException"/> with the gateway's answer.
    /// </summary>
    public static async Task<AccessToken> TokenAsync(HttpClient gateway, string client, string key, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, TokenPath)
        {
            Content = new FormUrlEncodedContent([new("grant_type", "client_credentials")]),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(client)}:{Uri.EscapeDataString(key)}")));
        using var response = await gateway.SendAsync(request, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException(
                $"The gateway refused a token to '{client}': {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}",
                inner: null, response.StatusCode);
        }
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        return new(body.GetProperty("access_token").GetString()!, TimeSpan.FromSeconds(body.GetProperty("expires_in").GetInt32()));
    }

    /// <summary>The <c>name=value</c> part of a cookie the response sets (the session cookie by default), or null.</summary>
    public static string? SetCookie(HttpResponseMessage response, string name = SessionCookieName) =>
        response.Headers.TryGetValues("Set-Cookie", out var values)
            ? values.Select(v => v.Split(';')[0]).FirstOrDefault(v => v.StartsWith(name + "=", StringComparison.Ordinal))
            : null;

    /// <summary>What is left of the quota a response was counted against (<c>"policy";r=remaining;t=seconds</c>), or null.</summary>
    public static (int Remaining, int ResetSeconds)? QuotaLeft(HttpResponseMessage response)
    {
        var field = response.Headers.TryGetValues("RateLimit", out var values) ? values.FirstOrDefault() : null;
        var match = field is null ? null : RateLimitField().Match(field);
        return match is { Success: true }
            ? (int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture))
            : null;
    }

    [GeneratedRegex(@";r=(\d+);t=(\d+)")]
    private static partial Regex RateLimitField();
}
