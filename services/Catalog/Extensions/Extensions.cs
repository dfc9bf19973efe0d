using Microsoft.Extensions.Options;
using ShopReference.Catalog.Analytics;
using ShopReference.Contracts.Events;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using ShopReference.Catalog.Apis;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.ChangeFeed;
using ShopReference.Catalog.Data;
using ShopReference.Catalog.Model;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Catalog.Extensions;

public static class Extensions
{
    /// <summary>The catalog's dependencies: the shared Valkey connection, its database, the product cache and output caching.</summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "catalog");
        builder.AddNpgsqlDataSource("catalogdb");

        builder.AddStartupInitializer<CatalogInitializer>("catalog-initializer");

        builder.Services.AddSingleton(sp => new SingleFlightCache(
            sp.GetRequiredService<IConnectionMultiplexer>(), new SingleFlightOptions { Channel = "catalog:cache:filled" }));
        // Product reads are served from process memory when a copy is there; any change anywhere drops it (docs/catalog.md).
        builder.AddValidatedOptions<NearCacheOptions>("Catalog:NearCache");
        builder.Services.AddSingleton(sp => new NearCache(sp.GetRequiredService<SingleFlightCache>(), sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<NearCacheOptions>>().Value));
        builder.Services.AddSingleton<CatalogDatabase>();
        builder.Services.AddSingleton<CatalogMetrics>();
        builder.Services.AddSingleton<ProductCache>();
        builder.Services.AddSingleton<ReplicationSlot>();
        builder.Services.AddHostedService<ProductChangeFeed>();
        builder.Services.AddEventQueue(); // views are appended off the request path: a read does not wait for its event
        builder.Services.AddHttpClient<TrendingClient>(http => http.BaseAddress = new Uri("https+http://analytics"));

        // The output-cache store is Valkey (registered by AddValkey), so a tag eviction on one replica empties every replica's view.
        builder.Services.AddOutputCache(options => options.AddPolicy(CatalogApi.ListPolicy, policy => policy
            .Expire(TimeSpan.FromMinutes(5))
            .SetVaryByQuery("category", "page", "pageSize")
            .Tag(CatalogApi.ListTag)));

        builder.Services.ConfigureHttpJsonOptions(options => options.SerializerOptions.TypeInfoResolverChain.Insert(0, CatalogJsonContext.Default));
    }

    /// <summary>The service's whole request pipeline, in order: what Program.cs runs and what the in-process tests host.</summary>
    public static WebApplication MapApplication(this WebApplication app)
    {
        app.UseReplicaHeader();
        app.MapDefaultEndpoints();
        app.MapApiDocuments("catalog");
        app.UseOutputCache();
        app.MapCatalogApi();
        return app;
    }
}
