using ShopReference.CartSession.Carts;

namespace ShopReference.CartSession.Carts;

/// <summary>
/// The session cookie: an opaque 256-bit id, HttpOnly, SameSite=Lax, Secure when the client used https (as the gateway
/// saw it: TLS usually ends at an ingress, so the service's own connection is plain http). An id the store does not know
/// (expired, or made up by the client) is never adopted: a write starts a fresh session and replaces the cookie.
/// </summary>
public static class CartSessionCookie
{
    public const string Name = "shop.sid";
    private const int MaxLength = 64;

    public static string? Read(HttpContext context) =>
        context.Request.Cookies.TryGetValue(Name, out var id) && id.Length is > 0 and <= MaxLength &&
        id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')
            ? id
            : null;

    public static async Task<string> StartAsync(HttpContext context, CartStore store, CartSessionMetrics metrics)
    {
        var id = await store.CreateSessionAsync();
        metrics.SessionStarted();
        context.Response.Cookies.Append(Name, id, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Lax,
            Secure = context.Request.IsHttps, // https as the client used it (ServiceDefaults takes it from the client context)
            Path = "/",
            MaxAge = store.Limits.IdleTimeout + TimeSpan.FromDays(1), // the server decides expiry; the cookie just outlives it
        });
        return id;
    }
}
