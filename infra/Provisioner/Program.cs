using ShopReference.Provisioner;

// A deployment's one-time PostgreSQL setup (publish mode; docs/deploy.md): the roles and databases of the services,
// created or brought up to date with the superuser's connection string, retried until PostgreSQL answers. /health
// answers 200 once done (503 before), so a platform's probe, and an operator, can tell.
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddDatabaseSetup();
var app = builder.Build();
app.MapGet("/health", (SetupState state) => state.Done ? Results.Text("Healthy") : Results.Text("Provisioning", statusCode: 503));
app.Run();
