using ShopReference.AppHost.Infrastructure;

var builder = DistributedApplication.CreateBuilder(args);

// Containers when an engine answers (and always when publishing), else local processes: see docs/local-mode.md.
var mode = InfrastructureModeResolver.Resolve(builder);
var ports = PortSettings.From(builder.Configuration);
PortSettings.KeepReplicaPortsApart(builder.Configuration); // replicas' ports never collide with the Valkey nodes' own

// Credentials: the gateway's signing secret and the API clients' keys, as secret parameters (docs/security.md).
var auth = ShopAuth.AddShopAuth(builder);

// Shared state: one Valkey and one PostgreSQL for the four services, each service with its own user and role.
var valkeyUsers = ShopValkeyUsers.Create(builder);
var valkey = builder.AddValkey("valkey", mode, ports.Valkey, valkeyUsers.Values).WithReportCommand();
var postgres = builder.AddShopPostgres("postgres", mode, ports.Postgres);

// The services, each showing one pattern. Each runs two replicas so cross-instance patterns are real (the gateway one).
var catalog = builder.AddProject<Projects.ShopReference_Catalog>("catalog")
    .WithReplicas(2)
    .WithValkeyUser(valkey, valkeyUsers["catalog"])
    .WithReference(postgres.Catalog).WaitFor(postgres.Catalog)
    .WithHttpHealthCheck("/health");

var cart = builder.AddProject<Projects.ShopReference_CartSession>("cart-session")
    .WithReplicas(2)
    .WithValkeyUser(valkey, valkeyUsers["cart"])
    .WithReference(postgres.Cart).WaitFor(postgres.Cart)
    .WithReference(catalog)
    .WithHttpHealthCheck("/health");

var analytics = builder.AddProject<Projects.ShopReference_Analytics>("analytics")
    .WithReplicas(2)
    .WithValkeyUser(valkey, valkeyUsers["analytics"])
    .WithReference(postgres.Analytics).WaitFor(postgres.Analytics)
    .WithReference(catalog)
    .WithHttpHealthCheck("/health");

// postgres-setup provisions the roles and databases, then exits; each service starts once it has (in a deployment too).
foreach (var service in new[] { catalog, cart, analytics })
{
    service.WaitForCompletion(postgres.Setup);
}

// The catalog reads trending products from analytics, but does not wait for it: without analytics the list is empty.
catalog.WithReference(analytics);

// The edge: the only external endpoint; it issues tokens, rate-limits and routes /api/* to the services by service discovery.
var gateway = builder.AddProject<Projects.ShopReference_RateLimit>("rate-limit")
    .WithValkeyUser(valkey, valkeyUsers["ratelimit"])
    .WithReference(catalog).WaitFor(catalog)
    .WithReference(cart).WaitFor(cart)
    .WithReference(analytics).WaitFor(analytics)
    .WithEndpoint("http", endpoint => endpoint.Port = ports.Gateway)
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health")
    .WithTrustedProxies(builder.Configuration)
    .WithRateLimitBurstCommand(auth)
    .WithReplicaDirectory(catalog, cart, analytics); // run mode: YARP reaches every replica, request by request
auth.IssueTokens(gateway);
foreach (var service in new[] { catalog, cart, analytics })
{
    auth.ValidateTokens(service, gateway);
}

// Simulated shoppers through the gateway, a run that the dashboard's Start begins (run mode only).
builder.AddShoppers(gateway, catalog, auth);

// Each service's API documents, linked on its resource as reached through the gateway.
catalog.WithApiDocumentLinks(gateway, "catalog");
cart.WithApiDocumentLinks(gateway, "cart");
analytics.WithApiDocumentLinks(gateway, "analytics");
gateway.WithApiDocumentLinks(gateway, "ratelimit");

// Dashboard commands, beside the resource they act on; the operator ones obtain a token from the gateway as a user would.
catalog.WithStampedeCommand(gateway, auth);
cart.WithLiveSessionsCommand(gateway, auth);
analytics.WithAnalyticsCommands(gateway, auth);

builder.Build().Run();
