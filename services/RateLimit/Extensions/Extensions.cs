using ShopReference.RateLimit.RateLimiting;

namespace ShopReference.RateLimit.Extensions;

public static class Extensions
{
    /// <summary>
    /// The gateway's dependencies: the shared Valkey connection (for the limiters), the configured policies, and YARP,
    /// whose cluster addresses (<c>http://catalog</c>, …) are resolved by service discovery from the AppHost's references.
    /// </summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "ratelimit");

        builder.Services.AddOptions<GatewayRateLimitOptions>()
            .Bind(builder.Configuration.GetSection(GatewayRateLimitOptions.Section))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<ClientIdentityResolver>();
        builder.Services.AddSingleton<RateLimitMetrics>();
        builder.Services.AddSingleton<PolicyLimiters>();

        builder.Services.AddReverseProxy()
            .LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"))
            .AddServiceDiscoveryDestinationResolver();
    }

    /// <summary>Rate-limits every /api request before it is routed (see RateLimitMiddleware).</summary>
    public static IApplicationBuilder UseGatewayRateLimiting(this IApplicationBuilder app) => app.UseMiddleware<RateLimitMiddleware>();
}
