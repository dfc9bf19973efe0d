namespace ShopReference.RateLimit.Extensions;

public static class Extensions
{
    /// <summary>
    /// The gateway's dependencies: the shared Valkey connection (for the limiters) and YARP, whose cluster
    /// addresses (<c>http://catalog</c>, …) are resolved by service discovery from the AppHost's references.
    /// </summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "ratelimit");
        builder.Services.AddReverseProxy()
            .LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"))
            .AddServiceDiscoveryDestinationResolver();
    }
}
