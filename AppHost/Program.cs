using ShopReference.AppHost.Infrastructure;

var builder = DistributedApplication.CreateBuilder(args);

// Containers when an engine answers (and always when publishing), else local processes: see docs/local-mode.md.
var mode = InfrastructureModeResolver.Resolve(builder);
var ports = PortSettings.From(builder.Configuration);

// Shared state: one Valkey and one PostgreSQL for the four services.
var valkey = builder.AddValkey("valkey", mode, ports.Valkey);
var postgres = builder.AddShopPostgres("postgres", mode, ports.Postgres);

// The services, each showing one pattern. Each runs two replicas so cross-instance patterns are real (the gateway one).
var catalog = builder.AddProject<Projects.ShopReference_Catalog>("catalog")
    .WithReplicas(2)
    .WithReference(valkey).WaitFor(valkey)
    .WithReference(postgres.Catalog).WaitFor(postgres.Catalog)
    .WithHttpHealthCheck("/health");

var cart = builder.AddProject<Projects.ShopReference_CartSession>("cart-session")
    .WithReplicas(2)
    .WithReference(valkey).WaitFor(valkey)
    .WithReference(postgres.Cart).WaitFor(postgres.Cart)
    .WithReference(catalog)
    .WithHttpHealthCheck("/health");

var analytics = builder.AddProject<Projects.ShopReference_Analytics>("analytics")
    .WithReplicas(2)
    .WithReference(valkey).WaitFor(valkey)
    .WithReference(postgres.Analytics).WaitFor(postgres.Analytics)
    .WithHttpHealthCheck("/health")
    .WithAnalyticsCommands();

// The catalog reads trending products from analytics, but does not wait for it: without analytics the list is empty.
catalog.WithReference(analytics);

// The edge: the only external endpoint; it rate-limits and routes /api/* to the services by service discovery.
var gateway = builder.AddProject<Projects.ShopReference_RateLimit>("rate-limit")
    .WithReference(valkey).WaitFor(valkey)
    .WithReference(catalog).WaitFor(catalog)
    .WithReference(cart).WaitFor(cart)
    .WithReference(analytics).WaitFor(analytics)
    .WithEndpoint("http", endpoint => endpoint.Port = ports.Gateway)
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health")
    .WithRateLimitBurstCommand();

// Dashboard commands that need the gateway, beside the resource they act on.
catalog.WithStampedeCommand(valkey, gateway);
cart.WithLiveSessionsCommand(valkey);

builder.Build().Run();
