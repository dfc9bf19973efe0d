using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What every ShopReference service shares: telemetry, health endpoints, ProblemDetails, and (in the full variant)
/// service discovery and resilient HttpClients. Valkey wiring is in <see cref="ValkeyClientExtensions"/>.
/// </summary>
public static class Extensions
{
    public const string HealthEndpointPath = "/health";
    public const string AlivenessEndpointPath = "/alive";

    /// <summary>Telemetry, health, ProblemDetails, OpenAPI, authentication (<see cref="ShopAuthentication"/>), service discovery and standard HttpClient resilience.</summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.AddBasicServiceDefaults();
        builder.AddShopAuthentication();
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        return builder;
    }

    /// <summary>Telemetry, health, ProblemDetails and OpenAPI, without service discovery or HttpClient defaults.</summary>
    public static TBuilder AddBasicServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<BadRequestHandler>();
        builder.Services.AddExceptionHandler<UnavailableDependencyHandler>();
        // Malformed JSON or an unparseable parameter is the client's error: thrown in every environment (not only in
        // Development, the default) so that BadRequestHandler answers 400 naming the field, not an empty 400.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(options => options.ThrowOnBadRequest = true);
        builder.Services.AddOpenApi(PublicDocument, options => options.ShouldInclude = IsPublic);
        builder.Services.AddOpenApi(InternalDocument);
        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                // One meter per service (ShopReference.Catalog, …) names the pattern's events.
                .AddMeter("ShopReference.*"))
            .WithTracing(tracing => tracing
                .SetSampler(BackgroundNoiseSampler.ForServices())
                .AddSource(builder.Environment.ApplicationName)
                .AddAspNetCoreInstrumentation(options =>
                    // Health probes every few seconds would drown the traces a reader came to see.
                    options.Filter = context =>
                        !context.Request.Path.StartsWithSegments(HealthEndpointPath) &&
                        !context.Request.Path.StartsWithSegments(AlivenessEndpointPath))
                .AddHttpClientInstrumentation());

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().UseOtlpExporter();
        }
        return builder;
    }

    /// <summary>
    /// <c>/health</c> (ready: every check, including Valkey and PostgreSQL) and <c>/alive</c> (live: the process only),
    /// errors as ProblemDetails, each route's body limit (<see cref="RequestBodyLimits"/>), and authentication.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.UseExceptionHandler();
        // Before authentication: a 401 or 403 without a body (the challenge) then gets a ProblemDetails body too.
        app.UseStatusCodePages();
        app.UseRequestBodyLimits();
        if (app.Services.GetService<Microsoft.AspNetCore.Authentication.IAuthenticationSchemeProvider>() is not null)
        {
            // TLS usually ends before the service: the scheme the client used is the one the gateway signed.
            app.Use(async (context, next) =>
            {
                if (!context.Request.IsHttps && (await ClientContext.FromAsync(context))?.IsHttps == true)
                {
                    context.Request.Scheme = "https";
                }
                await next(context);
            });
            app.UseAuthentication();
            app.UseAuthorization();
        }

        app.MapHealthChecks(HealthEndpointPath);
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions { Predicate = check => check.Tags.Contains("live") });
        return app;
    }

    /// <summary>The document the public sees: every operation but the operators' (<c>/admin</c>).</summary>
    public const string PublicDocument = "v1";

    /// <summary>Every operation, <c>/admin</c> included: for operators only, straight at a service.</summary>
    public const string InternalDocument = "internal";

    /// <summary>Where a service serves <see cref="InternalDocument"/>: outside <c>/api</c>, so the gateway never routes to it.</summary>
    public const string InternalDocumentPath = "/internal/openapi/" + InternalDocument + ".json";

    // Operator routes live under /admin: the gateway does not route them, and a map of them is no help to a stranger.
    private static bool IsPublic(Microsoft.AspNetCore.Mvc.ApiExplorer.ApiDescription operation) =>
        !(operation.RelativePath ?? "").StartsWith("admin", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The service's public OpenAPI document at <c>/api/{name}/openapi/v1.json</c> in every environment, so it is
    /// reachable through the gateway (and rate-limited like the rest); a Scalar UI over it at <c>/api/{name}/docs</c> in
    /// Development. The whole document, operator routes included, at <see cref="InternalDocumentPath"/> for the
    /// permission <c>operator</c>: what the hostile-input suite enumerates.
    /// </summary>
    public static WebApplication MapApiDocuments(this WebApplication app, string name)
    {
        // The route names the document, constrained to the public one (a route without the name would take it from the
        // query string, and serve the internal document to anyone who asks for it there).
        app.MapOpenApi($"/api/{name}/openapi/{{documentName:regex(^{PublicDocument}$)}}.json");
        app.MapOpenApi("/internal/openapi/{documentName}.json").RequireAuthorization(Permissions.Operator);
        if (app.Environment.IsDevelopment())
        {
            Scalar.AspNetCore.ScalarEndpointRouteBuilderExtensions.MapScalarApiReference(app, $"/api/{name}/docs",
                options => Scalar.AspNetCore.ScalarOptionsExtensions.WithOpenApiRoutePattern(options, $"/api/{name}/openapi/{{documentName}}.json"));
        }
        return app;
    }
}
