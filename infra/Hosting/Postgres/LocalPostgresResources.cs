namespace ShopReference.Hosting;

/// <summary>PostgreSQL run from the local binaries as an orchestrated process (Local mode).</summary>
public sealed class LocalPostgresServerResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    /// <summary>The superuser <c>initdb</c> creates.</summary>
    public const string UserName = "postgres";

    /// <summary>The superuser's password.</summary>
    public ParameterResource PasswordParameter { get; } = password;
    /// <summary>The server's TCP endpoint.</summary>
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");

    /// <summary>The superuser's connection: for provisioning and the administrator, never handed to a service.</summary>
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={PrimaryEndpoint.Property(EndpointProperty.Host)};Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username={UserName};Password={PasswordParameter}");
}

/// <summary>
/// One service's database on either PostgreSQL backend. Its connection string logs in as the service's own role
/// (<see cref="ServiceDatabase"/>), so <c>WithReference</c> hands a service least privilege, not the superuser.
/// </summary>
public sealed class ServiceDatabaseResource(ServiceDatabase database, IResourceWithEndpoints parent, EndpointReference endpoint)
    : Resource(database.Database), IResourceWithParent<IResourceWithEndpoints>, IResourceWithConnectionString
{
    /// <summary>The database and the role that owns it.</summary>
    public ServiceDatabase Database { get; } = database;
    /// <summary>The server the database lives on.</summary>
    public IResourceWithEndpoints Parent { get; } = parent;

    /// <summary>The owning role's connection string to this database.</summary>
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={endpoint.Property(EndpointProperty.Host)};Port={endpoint.Property(EndpointProperty.Port)};Username={Database.Role};Password={Database.Password};Database={Database.Database}");
}
