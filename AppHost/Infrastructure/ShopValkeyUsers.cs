namespace ShopReference.AppHost.Infrastructure;

/// <summary>The shop's four Valkey users (docs/security.md has the matrix), one per service.</summary>
public static class ShopValkeyUsers
{
    /// <summary>XADD to the analytics stream and nothing else on it, for the services that publish events.</summary>
    public const string PublishEvents = "(~analytics:events:* +xadd)";

    public static IReadOnlyDictionary<string, ValkeyUser> Create(IDistributedApplicationBuilder builder) =>
        new Dictionary<string, ValkeyUser>(StringComparer.Ordinal)
        {
            // Cache entries, locks, fences, the fill channel, output cache and HybridCache; publishes product views.
            // SCAN only for the change feed's reset after a slot had to be created (every cached product goes: the
            // changes before the new slot were never seen); without it that reset fails and the feed cannot start.
            ["catalog"] = builder.AddValkeyUser("catalog", "~catalog:* &catalog:*", $"+scan {PublishEvents}"),
            // Carts, checkout claims, the session blob and the Data Protection key ring; SCAN only to count live
            // sessions (its key names are SHA-256 hashes); publishes cart and order events.
            ["cart"] = builder.AddValkeyUser("cart", "~cart:*", $"+scan {PublishEvents}"),
            ["analytics"] = builder.AddValkeyUser("analytics", "~analytics:* &analytics:*"),
            ["ratelimit"] = builder.AddValkeyUser("ratelimit", "~ratelimit:*"),
        };
}
