namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// The resource <c>shoppers</c>: one run of simulated shoppers through the gateway, a project of its own that the
/// dashboard's Start runs (explicit start; never on its own, never deployed). They browse with Zipf popularity, add to
/// carts and check out; an administrator changes a price; every 15 s the hottest product expires while 24 of them want
/// it, and one bursts past its read quota. They use real credentials: the client <c>dashboard-shoppers</c> speaks for
/// each shopper with <c>X-Shopper</c>, price changes use <c>catalog-admin</c>, expiries <c>operator</c>.
/// <c>Shoppers:Count</c> and <c>Shoppers:Seconds</c> in the AppHost's settings say how many and how long (24, 60 s).
/// </summary>
public static class SimulatedShoppers
{
    public static void AddShoppers(this IDistributedApplicationBuilder builder, IResourceBuilder<ProjectResource> gateway,
        IResourceBuilder<ProjectResource> catalog, ShopAuth auth)
    {
        if (!builder.ExecutionContext.IsRunMode)
        {
            return; // a load generator is not part of a deployment
        }
        var shoppers = builder.AddProject<Projects.ShopReference_ShoppersApp>("shoppers")
            .WithReference(gateway).WithReference(catalog)
            .WaitFor(gateway)
            .WithExplicitStart()
            .WithIconName("PeopleCommunity")
            .WithEnvironment("Shoppers__ShopperKey", auth.ShoppersKey)
            .WithEnvironment("Shoppers__CatalogAdminKey", auth.CatalogAdminKey)
            .WithEnvironment("Shoppers__OperatorKey", auth.OperatorKey);
        foreach (var setting in new[] { "Count", "Seconds" })
        {
            if (builder.Configuration[$"Shoppers:{setting}"] is { } value)
            {
                shoppers.WithEnvironment($"Shoppers__{setting}", value);
            }
        }
    }
}
