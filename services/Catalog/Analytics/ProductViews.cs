using ShopReference.Valkey.Analytics;

namespace ShopReference.Catalog.Analytics;

/// <summary>The <c>product.viewed</c> event of a product read, attributed to a visitor without storing who they are.</summary>
public static class ProductViews
{
    /// <summary>
    /// The visitor is the cart session when the browser has one, else the client address the gateway forwarded, else the
    /// connection's address; only a hash of it leaves this method. Good enough to count unique visitors, useless to
    /// track anyone.
    /// </summary>
    public static AnalyticsEvent For(HttpContext http, long productId)
    {
        var token = http.Request.Cookies["shop.sid"] is { Length: > 0 } session ? "s:" + session
            : http.Request.Headers["X-Forwarded-For"].ToString().Split(',')[0].Trim() is { Length: > 0 } forwarded ? "a:" + forwarded
            : "a:" + http.Connection.RemoteIpAddress;
        return new AnalyticsEvent(EventRules.NewId(), EventTypes.ProductViewed, DateTimeOffset.UtcNow, EventRules.VisitorFrom(token), productId);
    }
}
