using ShopReference.RateLimit.RateLimiting;
using ShopReference.Contracts.Events;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ShopReference.RateLimit.Auth;

/// <summary>
/// On every request the gateway forwards: drop any <c>X-Shop-Client</c> the caller sent, and attach the gateway's own,
/// signed view of the client (a visitor id keyed from the identity the limiter counted, <see cref="VisitorIds"/>, and
/// the scheme it used).
/// Services take visitors and the https flag from this token only, never from a header a client can write.
/// </summary>
public static class ClientContextTransform
{
    public static void Apply(TransformBuilderContext builder) => builder.AddRequestTransform(context =>
    {
        var headers = context.ProxyRequest.Headers;
        headers.Remove(ShopAuthentication.ClientContextHeader);
        headers.Remove(ClientIdentityResolver.ShopperHeader); // the gateway's business only
        if (context.HttpContext.Features.Get<GatewayClient>() is { } client)
        {
            var services = context.HttpContext.RequestServices;
            headers.TryAddWithoutValidation(ShopAuthentication.ClientContextHeader, services.GetRequiredService<TokenIssuer>()
                .ClientContext(services.GetRequiredService<VisitorIds>().For(client.Identity.Partition), client.Identity.IsHttps));
        }
        return ValueTask.CompletedTask;
    });
}
