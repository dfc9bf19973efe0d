namespace ShopReference.AppHost.Infrastructure;

/// <summary>The PostgreSQL server and the three databases the services use, whichever backend runs them.</summary>
public sealed record ShopDatabases(
    IResourceBuilder<IResourceWithConnectionString> Server,
    IResourceBuilder<ServiceDatabaseResource> Catalog,
    IResourceBuilder<ServiceDatabaseResource> Cart,
    IResourceBuilder<ServiceDatabaseResource> Analytics,
    IResourceBuilder<ProjectResource>? Setup);

/// <summary>The shop's databases, each owned by its service's role; the catalog's may replicate (its change feed).</summary>
public static class ShopPostgres
{
    public static ShopDatabases AddShopPostgres(this IDistributedApplicationBuilder builder, string name, InfrastructureMode mode, int? port)
    {
        var catalog = new ServiceDatabase("catalogdb", "catalog", builder.AddPasswordParameter("postgres-catalog-password", "Password of the PostgreSQL role 'catalog' (owns catalogdb, REPLICATION for the change feed)."), Replication: true);
        var cart = new ServiceDatabase("cartdb", "cart", builder.AddPasswordParameter("postgres-cart-password", "Password of the PostgreSQL role 'cart' (owns cartdb)."));
        var analytics = new ServiceDatabase("analyticsdb", "analytics", builder.AddPasswordParameter("postgres-analytics-password", "Password of the PostgreSQL role 'analytics' (owns analyticsdb)."));
        ServiceDatabase[] all = [catalog, cart, analytics];

        var postgres = builder.AddPostgresServer(name, mode, port, all);
        return new(postgres.Server, postgres.Databases[0], postgres.Databases[1], postgres.Databases[2],
            builder.ExecutionContext.IsPublishMode ? builder.AddDeployedSetup(name, postgres.Server, all) : null);
    }

    /// <summary>
    /// Publish mode: Aspire creates no database on deploy (microsoft/aspire#14695), so a deployment runs the same
    /// provisioning as the AppHost does in run mode, in the project <c>{name}-setup</c>: the only holder of the
    /// superuser's connection string. The services wait for it.
    /// </summary>
    private static IResourceBuilder<ProjectResource> AddDeployedSetup(this IDistributedApplicationBuilder builder, string name,
        IResourceBuilder<IResourceWithConnectionString> server, IReadOnlyList<ServiceDatabase> databases)
    {
        var setup = builder.AddProject<Projects.ShopReference_Provisioner>($"{name}-setup")
            .WithEnvironment("ConnectionStrings__postgres", server.Resource.ConnectionStringExpression)
            .WaitFor(server)
            .WithHttpEndpoint() // internal only: its /health says whether the setup is done
            .WithHttpHealthCheck("/health");
        for (var i = 0; i < databases.Count; i++)
        {
            setup.WithEnvironment($"Databases__{i}__Database", databases[i].Database)
                .WithEnvironment($"Databases__{i}__Role", databases[i].Role)
                .WithEnvironment($"Databases__{i}__Password", databases[i].Password)
                .WithEnvironment($"Databases__{i}__Replication", databases[i].Replication ? "true" : "false");
        }
        return setup;
    }
}
