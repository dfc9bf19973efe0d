namespace ShopReference.AppHost.Infrastructure;

/// <summary>The PostgreSQL server, the three databases the services use, and the worker that provisions them.</summary>
public sealed record ShopDatabases(
    IResourceBuilder<IResourceWithConnectionString> Server,
    IResourceBuilder<ServiceDatabaseResource> Catalog,
    IResourceBuilder<ServiceDatabaseResource> Cart,
    IResourceBuilder<ServiceDatabaseResource> Analytics,
    IResourceBuilder<ProjectResource> Setup);

/// <summary>The shop's databases, each owned by its service's role; the catalog's may replicate (its change feed).</summary>
public static class ShopPostgres
{
    /// <summary>
    /// Aspire creates no database on deploy (microsoft/aspire#14695), so the project <c>{name}-setup</c> provisions the
    /// roles and databases, once, in run mode and on a deployment alike: the only holder of the superuser's connection
    /// string, for the seconds it runs. The databases turn Running when it has finished, so a service waiting for its
    /// database waits for it too.
    /// </summary>
    public static ShopDatabases AddShopPostgres(this IDistributedApplicationBuilder builder, string name, InfrastructureMode mode, int? port)
    {
        var catalog = new ServiceDatabase("catalogdb", "catalog", builder.AddPasswordParameter("postgres-catalog-password", "Password of the PostgreSQL role 'catalog' (owns catalogdb, REPLICATION for the change feed)."), Replication: true);
        var cart = new ServiceDatabase("cartdb", "cart", builder.AddPasswordParameter("postgres-cart-password", "Password of the PostgreSQL role 'cart' (owns cartdb)."));
        var analytics = new ServiceDatabase("analyticsdb", "analytics", builder.AddPasswordParameter("postgres-analytics-password", "Password of the PostgreSQL role 'analytics' (owns analyticsdb)."));

        var postgres = builder.AddPostgresServer(name, mode, port, [catalog, cart, analytics]);
        var setup = postgres.WithProvisioningWorker(builder.AddProject<Projects.ShopReference_Provisioner>($"{name}-setup"));
        return new(postgres.Server, postgres.Databases[0], postgres.Databases[1], postgres.Databases[2], setup);
    }
}
