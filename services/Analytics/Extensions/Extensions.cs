using Microsoft.Extensions.Options;
using OpenTelemetry.Trace;
using ShopReference.Analytics.Apis;
using ShopReference.ServiceClients;
using ShopReference.Analytics.Data;
using ShopReference.Analytics.Workers;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Analytics.Extensions;

public static class Extensions
{
    /// <summary>
    /// The service's dependencies: the shared Valkey connection, its database, this instance's member of the consumer
    /// group, the single-flight cache the windowed leaderboards go through, the rollup to PostgreSQL and the meter.
    /// </summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "analytics");
        // A batch applied is traced under its own activity (the polls between batches are sampled away).
        builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddSource(EventConsumer.Tracing.Name));
        builder.AddNpgsqlDataSource("analyticsdb");
        builder.Services.AddSingleton(TimeProvider.System);

        builder.Services.AddSingleton(sp => new SingleFlightCache(sp.GetRequiredService<IConnectionMultiplexer>(), new SingleFlightOptions { Channel = "analytics:cache:filled" }));
        builder.Services.AddSingleton(sp => new Leaderboards(sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<SingleFlightCache>()));
        builder.Services.AddSingleton(sp => new AnalyticsReads(sp.GetRequiredService<IConnectionMultiplexer>()));
        builder.Services.AddSingleton<EventPublisher>();
        builder.AddCatalogClient(); // the public event route accepts only products the catalog holds

        // One consumer per process, named so that a restart is a new member; the old one's pending entries are claimed.
        builder.AddValidatedOptions<EventConsumerOptions>("Analytics:Consumer");
        builder.Services.AddSingleton(sp => new EventConsumer(sp.GetRequiredService<IConnectionMultiplexer>(),
            $"{Environment.MachineName}-{Environment.ProcessId}-{EventRules.NewId()[..6]}", sp.GetRequiredService<IOptions<EventConsumerOptions>>().Value,
            sp.GetRequiredService<ILogger<EventConsumer>>()));
        builder.Services.AddSingleton<AnalyticsMetrics>();
        builder.Services.AddHostedService<ConsumerWorker>();

        builder.AddStartupInitializer<Rollups>("analytics-schema");
        builder.Services.AddHostedService<RollupWorker>();
    }

    /// <summary>The service's whole request pipeline, in order: what Program.cs runs and what the in-process tests host.</summary>
    public static WebApplication MapApplication(this WebApplication app)
    {
        app.UseReplicaHeader();
        app.MapDefaultEndpoints();
        app.MapApiDocuments("analytics");
        app.MapAnalyticsApi();
        app.MapAnalyticsAdminApi();
        return app;
    }
}
