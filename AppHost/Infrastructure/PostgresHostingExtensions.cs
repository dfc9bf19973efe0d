using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using ShopReference.LocalServers;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>The PostgreSQL server and the three databases the services use, whichever backend runs them.</summary>
public sealed record ShopDatabases(
    IResourceBuilder<IResourceWithConnectionString> Server,
    IResourceBuilder<IResourceWithConnectionString> Catalog,
    IResourceBuilder<IResourceWithConnectionString> Cart,
    IResourceBuilder<IResourceWithConnectionString> Analytics);

/// <summary>
/// PostgreSQL with logical decoding on (the catalog's change-data capture needs <c>wal_level=logical</c>):
/// the Aspire PostgreSQL container, or the local binaries with <c>initdb</c> once into a git-ignored folder.
/// </summary>
public static class PostgresHostingExtensions
{
    public static ShopDatabases AddShopPostgres(this IDistributedApplicationBuilder builder, string name, InfrastructureMode mode, int? port)
    {
        var password = builder.AddPasswordParameter($"{name}-password");
        if (mode == InfrastructureMode.Local)
        {
            var local = builder.AddLocalPostgres(name, password, port);
            return new(Erase(local), Erase(local.AddLocalDatabase("catalogdb")), Erase(local.AddLocalDatabase("cartdb")), Erase(local.AddLocalDatabase("analyticsdb")));
        }

        var postgres = builder.AddPostgres(name, password: builder.CreateResourceBuilder(password), port: port)
            .WithArgs("-c", "wal_level=logical")
            .WithDataVolume();
        return new(Erase(postgres), Erase(postgres.AddDatabase("catalogdb")), Erase(postgres.AddDatabase("cartdb")), Erase(postgres.AddDatabase("analyticsdb")));
    }

    private static IResourceBuilder<IResourceWithConnectionString> Erase<T>(IResourceBuilder<T> builder) where T : IResourceWithConnectionString =>
        builder.ApplicationBuilder.CreateResourceBuilder<IResourceWithConnectionString>(builder.Resource);

    private static IResourceBuilder<LocalPostgresServerResource> AddLocalPostgres(
        this IDistributedApplicationBuilder builder, string name, ParameterResource password, int? port)
    {
        var binDirectory = ServerBinaries.FindPostgresBinDirectory()
            ?? throw new DistributedApplicationException($"Local mode needs the PostgreSQL server binaries. {ServerBinaries.InstallHint}");
        var cluster = new PostgresCluster(binDirectory, LocalDataDirectory.For(builder, name));
        var (fileName, arguments) = cluster.ServerCommand();
        var resource = new LocalPostgresServerResource(name, fileName, builder.AppHostDirectory, password);

        var postgres = builder.AddResource(resource)
            .WithEndpoint(port: port, name: "tcp", scheme: "tcp")
            .WithArgs(context =>
            {
                foreach (var argument in arguments)
                {
                    context.Args.Add(argument);
                }
                context.Args.Add("-p");
                context.Args.Add(resource.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
            })
            .WithIconName("DatabaseStack");

        // initdb the first time; apply the current password every time, so a changed parameter never locks the user out.
        builder.Eventing.Subscribe<BeforeResourceStartedEvent>(resource, async (_, cancellationToken) =>
            await cluster.PrepareAsync(await password.GetValueAsync(cancellationToken) ?? "", cancellationToken));

        // Databases are created as soon as the server answers, before any dependant starts. The orchestrator
        // mirrors a parent's state onto child resources only for containers, so the databases' state is published here.
        builder.Eventing.Subscribe<ResourceReadyEvent>(resource, async (@event, cancellationToken) =>
        {
            await CreateMissingDatabasesAsync(resource, cancellationToken);
            await PublishDatabaseStateAsync(@event.Services, resource, KnownResourceStates.Running);
        });
        builder.Eventing.Subscribe<ResourceStoppedEvent>(resource, (@event, _) =>
            PublishDatabaseStateAsync(@event.Services, resource, KnownResourceStates.Exited));

        return postgres.WithSelectOneHealthCheck();
    }

    private static async Task CreateMissingDatabasesAsync(LocalPostgresServerResource server, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(await server.ConnectionStringExpression.GetValueAsync(cancellationToken));
        await connection.OpenAsync(cancellationToken);
        foreach (var database in server.Databases.Values)
        {
            await using var exists = new NpgsqlCommand("select 1 from pg_database where datname = $1", connection) { Parameters = { new() { Value = database } } };
            if (await exists.ExecuteScalarAsync(cancellationToken) is null)
            {
                await using var create = new NpgsqlCommand($"create database \"{database}\"", connection);
                await create.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    private static async Task PublishDatabaseStateAsync(IServiceProvider services, LocalPostgresServerResource server, string state)
    {
        var notifications = services.GetRequiredService<ResourceNotificationService>();
        var model = services.GetRequiredService<DistributedApplicationModel>();
        foreach (var database in model.Resources.OfType<LocalPostgresDatabaseResource>().Where(db => db.Parent == server))
        {
            await notifications.PublishUpdateAsync(database, snapshot => snapshot with { State = state });
        }
    }

    private static IResourceBuilder<LocalPostgresDatabaseResource> AddLocalDatabase(this IResourceBuilder<LocalPostgresServerResource> server, string name)
    {
        server.Resource.Databases[name] = name;
        return server.ApplicationBuilder.AddResource(new LocalPostgresDatabaseResource(name, name, server.Resource))
            .WithSelectOneHealthCheck();
    }

    private static IResourceBuilder<T> WithSelectOneHealthCheck<T>(this IResourceBuilder<T> builder) where T : IResourceWithConnectionString
    {
        var key = $"{builder.Resource.Name}_select1";
        var resource = builder.Resource;
        builder.ApplicationBuilder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            key,
            _ => new DelegateHealthCheck(async cancellationToken =>
            {
                var connectionString = new NpgsqlConnectionStringBuilder(await resource.ConnectionStringExpression.GetValueAsync(cancellationToken))
                {
                    Pooling = false,
                    Timeout = 5,
                };
                await using var connection = new NpgsqlConnection(connectionString.ConnectionString);
                await connection.OpenAsync(cancellationToken);
                await using var select = new NpgsqlCommand("select 1", connection);
                return await select.ExecuteScalarAsync(cancellationToken) is 1;
            }),
            failureStatus: default,
            tags: default));
        return builder.WithHealthCheck(key);
    }
}
