namespace ShopReference.CartSession.Orders;

/// <summary>A placed order; prices are the catalog's at the moment of checkout, never read again.</summary>
public sealed record Order(long Id, string Email, DateTimeOffset PlacedAt, IReadOnlyList<OrderLine> Lines, decimal Total);

public sealed record OrderLine(long ProductId, string Name, decimal UnitPrice, int Quantity);

/// <summary>The checkout body. Its fingerprint is stored with the Idempotency-Key: another body under the same key is a 422.</summary>
public sealed record CheckoutRequest(string? Email);
