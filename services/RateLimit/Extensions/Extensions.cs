using Microsoft.AspNetCore.Authentication.JwtBearer;
using ShopReference.RateLimit.Apis;
using ShopReference.RateLimit.Auth;
using ShopReference.RateLimit.RateLimiting;
using ShopReference.RateLimit.Routing;

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

        builder.AddValidatedOptions<GatewayRateLimitOptions>(GatewayRateLimitOptions.Section)
            // One setting may list several proxies, comma-separated (a deployment passes one parameter).
            .PostConfigure(options => options.TrustedProxies = [.. options.TrustedProxies.SelectMany(p => p.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))]);
        builder.Services.AddOptions<ApiClientsOptions>()
            .Configure(options => builder.Configuration.GetSection(ApiClientsOptions.Section).Bind(options.Clients))
            .PostConfigure(options => options.HashKeys())
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<ApiClientRegistry>();
        builder.Services.AddSingleton<TokenIssuer>();
        VisitorIds.AddTo(builder.Services, builder.Configuration);
        // The gateway validates its own tokens with its own public keys, not by asking itself over the network.
        foreach (var scheme in new[] { JwtBearerDefaults.AuthenticationScheme, ShopAuthentication.ClientContextScheme })
        {
            builder.Services.AddOptions<JwtBearerOptions>(scheme).Configure<TokenIssuer>((options, issuer) =>
                options.TokenValidationParameters.IssuerSigningKeys = [.. options.TokenValidationParameters.IssuerSigningKeys ?? [], .. issuer.PublishedKeys]);
        }
        builder.Services.AddSingleton<CredentialFailures>();
        builder.Services.AddSingleton<ClientIdentityResolver>();
        builder.Services.AddSingleton<RateLimitMetrics>();
        builder.Services.AddSingleton<PolicyLimiters>();

        builder.Services.AddReverseProxy()
            .LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"))
            .AddServiceDiscoveryDestinationResolver()
            .AddTransforms(ClientContextTransform.Apply);
        ReplicaFileResolver.AddTo(builder.Services, builder.Configuration); // run mode: every replica, request by request
    }

    /// <summary>
    /// Behind an ingress (Azure Container Apps, a load balancer) every connection comes from the proxy: without
    /// <c>RateLimiting:TrustedProxies</c> all clients would share one quota and none would count as https. Say so at start.
    /// </summary>
    public static void WarnWithoutTrustedProxies(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<GatewayRateLimitOptions>>().Value;
        if (!app.Environment.IsDevelopment() && options.TrustedProxies.Count == 0)
        {
            app.Logger.LogWarning(
                "RateLimiting:TrustedProxies is empty. Behind an ingress every client shares the ingress's address and quota, and " +
                "TLS at the ingress is not seen: set it to the ingress's addresses or subnet (CIDR).");
        }
    }

    /// <summary>Rate-limits every /api request before it is routed (see RateLimitMiddleware).</summary>
    public static IApplicationBuilder UseGatewayRateLimiting(this IApplicationBuilder app) => app.UseMiddleware<RateLimitMiddleware>();

    /// <summary>The service's whole request pipeline, in order: what Program.cs runs and what the in-process tests host.</summary>
    public static WebApplication MapApplication(this WebApplication app)
    {
        app.WarnWithoutTrustedProxies();
        app.UseTrustedProxies();
        app.MapDefaultEndpoints();
        app.MapApiDocuments("ratelimit");
        app.UseGatewayRateLimiting();
        app.MapRateLimitApi();
        app.MapTokenApi();
        app.MapDiscoveryApi();
        app.MapReverseProxy();
        return app;
    }
}
