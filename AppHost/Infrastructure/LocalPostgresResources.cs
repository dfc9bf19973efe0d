namespace ShopReference.AppHost.Infrastructure;

/// <summary>PostgreSQL run from the local binaries as an orchestrated process (Local mode).</summary>
public sealed class LocalPostgresServerResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string UserName = "postgres";

    public ParameterResource PasswordParameter { get; } = password;
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");

    /// <summary>Database resource name -> database name, created once the server answers.</summary>
    public Dictionary<string, string> Databases { get; } = new(StringComparer.Ordinal);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={PrimaryEndpoint.Property(EndpointProperty.Host)};Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username={UserName};Password={PasswordParameter}");
}

/// <summary>One database on a <see cref="LocalPostgresServerResource"/>; its connection string names the database.</summary>
public sealed class LocalPostgresDatabaseResource(string name, string databaseName, LocalPostgresServerResource parent)
    : Resource(name), IResourceWithParent<LocalPostgresServerResource>, IResourceWithConnectionString
{
    public string DatabaseName { get; } = databaseName;
    public LocalPostgresServerResource Parent { get; } = parent;

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{Parent};Database={DatabaseName}");
}
