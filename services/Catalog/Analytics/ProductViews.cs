using ShopReference.Contracts.Events;

namespace ShopReference.Catalog.Analytics;

/// <summary>The <c>product.viewed</c> event of a product read through the gateway.</summary>
public static class ProductViews
{
    /// <summary>
    /// The visitor is the gateway's signed view of the client (a hash of the address or API client it counted), never a
    /// cookie or header the client could vary to pose as many visitors.
    /// </summary>
    public static AnalyticsEvent For(ClientContext client, long productId) =>
        new(EventRules.NewId(), EventTypes.ProductViewed, DateTimeOffset.UtcNow, client.Visitor, productId);
}
