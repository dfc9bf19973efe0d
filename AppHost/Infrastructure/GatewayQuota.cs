using ShopReference.Shoppers;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// What is left of an API client's read quota, from the gateway's own answer (the IETF <c>RateLimit</c> field of a
/// <c>GET /api/ratelimit/policies</c>, which itself spends one read): the traffic commands ask before they fire, so a
/// repeated run says when the quota is back instead of reporting a wall of 429s.
/// </summary>
public static class GatewayQuota
{
    public static async Task<(int Remaining, int ResetSeconds)?> LeftAsync(HttpClient gateway, string apiKey, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/ratelimit/policies");
        request.Headers.Add("X-Api-Key", apiKey);
        using var response = await gateway.SendAsync(request, cancellationToken);
        return ShopClient.QuotaLeft(response);
    }
}
