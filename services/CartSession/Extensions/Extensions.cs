using Microsoft.Extensions.Options;
using ShopReference.ServiceClients;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.AspNetCore.Diagnostics;
using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Carts;
using ShopReference.CartSession.Orders;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

namespace ShopReference.CartSession.Extensions;

public static class Extensions
{
    /// <summary>The Data Protection key ring shared by the replicas (a list of XML key elements).</summary>
    public const string DataProtectionKeys = "cart:dataprotection:keys";

    /// <summary>The service's dependencies: the shared Valkey connection, its database and the cart store.</summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "cart");
        builder.AddNpgsqlDataSource("cartdb");
        builder.AddValidatedOptions<CartLimits>("Cart");
        builder.Services.AddSingleton(sp => new CartStore(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<CartLimits>>().Value));
        builder.Services.AddSingleton(sp => new CheckoutClaims(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<IOptions<CartLimits>>().Value));
        builder.Services.AddSingleton<CartSessionMetrics>();
        builder.AddStartupInitializer<OrdersDatabase>("orders-schema");
        builder.Services.AddScoped<CheckoutService>();
        builder.Services.AddEventQueue(); // cart adds are appended off the request path; orders go through the outbox
        builder.Services.AddSingleton<OutboxRelay>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OutboxRelay>());

        // The session cookie is protected by Data Protection: its key ring lives in Valkey, so every replica reads the
        // cookie another replica wrote (per-process keys would make a replica switch look like a new session).
        builder.Services.AddDataProtection().SetApplicationName("shopreference-cart-session");
        builder.Services.AddOptions<KeyManagementOptions>()
            .Configure<IConnectionMultiplexer>((options, multiplexer) =>
                options.XmlRepository = new Microsoft.AspNetCore.DataProtection.StackExchangeRedis.RedisXmlRepository(
                    () => multiplexer.GetDatabase(), DataProtectionKeys));
        builder.Services.Replace(ServiceDescriptor.Singleton<IKeyManager>(sp => new Sessions.SharedKeyCreation(
            ActivatorUtilities.CreateInstance<XmlKeyManager>(sp), sp.GetRequiredService<IConnectionMultiplexer>())));
        builder.AddStartupInitializer<Sessions.DataProtectionKeyRing>("dataprotection-key");

        // The comparison: ASP.NET Core's session over IDistributedCache (Valkey, "cart:dcache:"), for preferences only.
        builder.Services.AddSession();
        builder.Services.AddOptions<SessionOptions>().Configure<IOptions<CartLimits>>((options, limits) =>
        {
            options.Cookie.Name = PreferencesApi.CookieName;
            options.Cookie.HttpOnly = true;
            options.Cookie.SameSite = SameSiteMode.Lax;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.Cookie.IsEssential = true;
            options.IdleTimeout = limits.Value.IdleTimeout;
        });
        builder.AddCatalogClient();
    }

    /// <summary>The service's whole request pipeline, in order: what Program.cs runs and what the in-process tests host.</summary>
    public static WebApplication MapApplication(this WebApplication app)
    {
        app.UseReplicaHeader();
        app.MapDefaultEndpoints();
        app.MapApiDocuments("cart");
        app.UseSession(); // only the preferences routes touch it (the ASP.NET Session comparison)
        app.MapCartApi();
        app.MapCartAdminApi();
        return app;
    }
}
