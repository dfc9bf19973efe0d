using System.Net;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>
/// Who the client is behind the ingress, by ASP.NET Core's <see cref="ForwardedHeadersMiddleware"/>: <c>X-Forwarded-For</c>
/// and <c>X-Forwarded-Proto</c> are read right to left, one hop at a time, only while the hop that sent them is a trusted
/// proxy (<c>RateLimiting:TrustedProxies</c>), and at most <see cref="ForwardLimit"/> hops deep. Each hop's address and
/// scheme are taken together, so the scheme is the one the client itself used, not whatever the leftmost entry claims.
/// The middleware then sets the connection's remote address and the request's scheme, which is all the limiter, the
/// refused-credential count and the client context read.
/// </summary>
public static class TrustedProxies
{
    /// <summary>More hops than any ingress chain in front of the gateway; a longer forged chain is not walked.</summary>
    public const int ForwardLimit = 8;

    /// <summary>
    /// The options for <paramref name="proxies"/> (addresses and CIDR networks), and no one else; null when there are
    /// none, because the middleware with both lists empty believes every peer.
    /// </summary>
    public static ForwardedHeadersOptions? Options(IReadOnlyCollection<string> proxies)
    {
        if (proxies.Count == 0)
        {
            return null;
        }
        var options = new ForwardedHeadersOptions
        {
            ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto,
            ForwardLimit = ForwardLimit,
        };
        // The defaults trust loopback; here only what is configured is trusted.
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var proxy in proxies)
        {
            if (proxy.Contains('/'))
            {
                options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(proxy));
            }
            else
            {
                options.KnownProxies.Add(IPAddress.Parse(proxy));
            }
        }
        return options;
    }

    /// <summary>First in the gateway's pipeline, so everything after it sees the client, not the ingress.</summary>
    public static IApplicationBuilder UseTrustedProxies(this IApplicationBuilder app) =>
        Options(app.ApplicationServices.GetRequiredService<IOptions<GatewayRateLimitOptions>>().Value.TrustedProxies) is { } options
            ? app.UseForwardedHeaders(options)
            : app; // no proxy is trusted: the connection's own address and scheme stand
}
