using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace ShopReference.Hosting;

/// <summary>A PostgreSQL server and one database per service on it, whichever backend runs them.</summary>
/// <param name="Server">The server; its connection string is the superuser's, for provisioning only.</param>
/// <param name="Databases">One resource per <see cref="ServiceDatabase"/>, in the order given; hand these to services.</param>
public sealed record PostgresServer(
    IResourceBuilder<IResourceWithConnectionString> Server,
    IReadOnlyList<IResourceBuilder<ServiceDatabaseResource>> Databases);

/// <summary>One service's database and the login role that owns it; <see cref="Replication"/> for a change feed's.</summary>
/// <param name="Database">The database's name, also the resource's.</param>
/// <param name="Role">The login role that owns it, the only one the service connects as.</param>
/// <param name="Password">The role's password parameter.</param>
/// <param name="Replication">Whether the role may open a logical replication connection.</param>
public sealed record ServiceDatabase(string Database, string Role, ParameterResource Password, bool Replication = false);

/// <summary>
/// PostgreSQL with logical decoding on (change-data capture needs <c>wal_level=logical</c>): the PostgreSQL container,
/// or the local binaries with <c>initdb</c> once into a git-ignored folder. In run mode, once the server answers,
/// <see cref="PostgresProvisioner"/> gives each service its own role and database, and each database resource hands its
/// service a connection string with that role, never the superuser; or <see cref="WithProvisioningWorker"/> hands
/// that to a run-once worker, in both modes (Aspire creates no database on deploy, so a deployment needs one).
/// </summary>
public static class PostgresHostingExtensions
{
    /// <summary>
    /// The most WAL a replication slot may hold back (<c>Infrastructure:Postgres:MaxSlotWalKeepSize</c>): beyond it the
    /// server invalidates the slot rather than fill its disk, and a change feed must then recreate it and reset what it kept.
    /// </summary>
    public const string DefaultMaxSlotWalKeepSize = "1GB";

    /// <summary>The image Containers mode runs (<c>Infrastructure:Postgres:Image</c>): PostgreSQL 18's, whose data lives under <c>/var/lib/postgresql</c>.</summary>
    public const string DefaultImage = "docker.io/library/postgres:18.3";

    /// <summary>Adds the server <paramref name="name"/> (superuser password parameter <c>{name}-password</c>) and one database resource per entry of <paramref name="databases"/>.</summary>
    public static PostgresServer AddPostgresServer(this IDistributedApplicationBuilder builder, string name, InfrastructureMode mode, int? port,
        IReadOnlyList<ServiceDatabase> databases)
    {
        var walCap = builder.Configuration["Infrastructure:Postgres:MaxSlotWalKeepSize"] ?? DefaultMaxSlotWalKeepSize;
        if (!System.Text.RegularExpressions.Regex.IsMatch(walCap, "^(-1|[1-9][0-9]{0,9}(kB|MB|GB|TB)?)$"))
        {
            throw new DistributedApplicationException($"Infrastructure:Postgres:MaxSlotWalKeepSize '{walCap}' is not a size such as 1GB (or -1 for no cap).");
        }
        var password = builder.AddPasswordParameter($"{name}-password", "The PostgreSQL superuser's password; only the AppHost uses it, to provision roles and databases.");
        IResourceBuilder<IResourceWithConnectionString> server;
        EndpointReference endpoint;
        if (mode == InfrastructureMode.Local)
        {
            var local = builder.AddLocalPostgres(name, password, port, walCap);
            (server, endpoint) = (Erase(local), local.Resource.PrimaryEndpoint);
        }
        else
        {
            var image = ContainerImage.From(builder.Configuration, "Postgres", DefaultImage);
            var container = builder.AddPostgres(name, password: builder.CreateResourceBuilder(password), port: port)
                .WithImage(image.Name, image.Tag)
                .WithImageRegistry(image.Registry)
                .WithArgs("-c", "wal_level=logical", "-c", $"max_slot_wal_keep_size={walCap}")
                .WithStartupDiagnosis(dataDirectory: null);
            if (builder.ExecutionContext.IsRunMode)
            {
                // Not when deploying: on Azure Container Apps a volume is an SMB share on which initdb cannot set the
                // ownership and modes PostgreSQL demands (microsoft/aspire#6671). docs/deploy.md says what to use instead.
                container.WithDataVolume(ContainerVolumes.DataVolume(container));
            }
            (server, endpoint) = (Erase(container), container.Resource.PrimaryEndpoint);
        }

        if (builder.ExecutionContext.IsRunMode)
        {
            // Roles and databases are provisioned as soon as the server answers, before any dependant starts: here, or
            // by the worker WithProvisioningWorker named, once it has finished. The orchestrator mirrors a parent's
            // state only onto a container's own children, so the databases' state is published here.
            builder.Eventing.Subscribe<ResourceReadyEvent>(server.Resource, async (@event, cancellationToken) =>
            {
                if (server.Resource.TryGetLastAnnotation<ProvisioningWorkerAnnotation>(out var worker))
                {
                    _ = PublishWhenProvisionedAsync(@event.Services, server.Resource, worker.Worker);
                    return;
                }
                var grants = new List<DatabaseGrant>();
                foreach (var database in databases)
                {
                    grants.Add(new(database.Database, database.Role, await database.Password.GetValueAsync(cancellationToken) ?? "", database.Replication));
                }
                await PostgresProvisioner.ProvisionAsync(await server.Resource.ConnectionStringExpression.GetValueAsync(cancellationToken) ?? "", grants, cancellationToken);
                await PublishDatabaseStateAsync(@event.Services, server.Resource, KnownResourceStates.Running);
            });
            builder.Eventing.Subscribe<ResourceStoppedEvent>(server.Resource, (@event, _) =>
                PublishDatabaseStateAsync(@event.Services, server.Resource, KnownResourceStates.Exited));
        }

        return new(server, [.. databases.Select(database => builder.AddServiceDatabase(database, server.Resource, endpoint))]);
    }

    /// <summary>
    /// Hands the provisioning to <paramref name="worker"/>, a process that runs once and exits (0 when done), in run mode
    /// and in a deployment alike, so both take the same path and only that process ever holds the superuser's
    /// connection string. It waits for the server and is given <c>ConnectionStrings__postgres</c> (the superuser's) and
    /// <c>Databases__{n}__Database</c>, <c>__Role</c>, <c>__Password</c> and <c>__Replication</c>, which
    /// <see cref="PostgresProvisioner.ReadGrants"/> reads. In run mode the databases turn Running when it has finished
    /// with exit code 0 (and <c>FailedToStart</c> when it did not), so a service's <c>WaitFor</c> on its database waits for it.
    /// </summary>
    public static IResourceBuilder<T> WithProvisioningWorker<T>(this PostgresServer postgres, IResourceBuilder<T> worker)
        where T : IResourceWithEnvironment, IResourceWithWaitSupport
    {
        worker.WithEnvironment("ConnectionStrings__postgres", postgres.Server.Resource.ConnectionStringExpression).WaitFor(postgres.Server);
        for (var i = 0; i < postgres.Databases.Count; i++)
        {
            var database = postgres.Databases[i].Resource.Database;
            worker.WithEnvironment($"Databases__{i}__Database", database.Database)
                .WithEnvironment($"Databases__{i}__Role", database.Role)
                .WithEnvironment($"Databases__{i}__Password", database.Password)
                .WithEnvironment($"Databases__{i}__Replication", database.Replication ? "true" : "false");
        }
        postgres.Server.WithAnnotation(new ProvisioningWorkerAnnotation(worker.Resource), ResourceAnnotationMutationBehavior.Replace);
        return worker;
    }

    // The worker ends once; a later restart of the server finds its outcome already there.
    private static async Task PublishWhenProvisionedAsync(IServiceProvider services, IResource server, IResource worker)
    {
        var stopping = services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping;
        try
        {
            var ended = await services.GetRequiredService<ResourceNotificationService>().WaitForResourceAsync(worker.Name,
                e => e.Snapshot.State?.Text is { } state && KnownResourceStates.TerminalStates.Contains(state), stopping);
            await PublishDatabaseStateAsync(services, server,
                ended.Snapshot.ExitCode == 0 ? KnownResourceStates.Running : KnownResourceStates.FailedToStart);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private static IResourceBuilder<IResourceWithConnectionString> Erase<T>(IResourceBuilder<T> builder) where T : IResourceWithConnectionString =>
        builder.ApplicationBuilder.CreateResourceBuilder<IResourceWithConnectionString>(builder.Resource);

    private static IResourceBuilder<LocalPostgresServerResource> AddLocalPostgres(
        this IDistributedApplicationBuilder builder, string name, ParameterResource password, int? port, string walCap)
    {
        var binDirectory = ServerBinaries.FindPostgresBinDirectory()
            ?? throw new DistributedApplicationException($"Local mode needs the PostgreSQL server binaries. {ServerBinaries.InstallHint}");
        var cluster = new PostgresCluster(binDirectory, LocalDataDirectory.For(builder, name));
        var (fileName, arguments) = cluster.ServerCommand(new Dictionary<string, string> { ["max_slot_wal_keep_size"] = walCap });
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
            .WithIconName("DatabaseStack")
            .WithStartupDiagnosis(cluster.DataDirectory);

        // initdb the first time; apply the current password every time, so a changed parameter never locks the user out.
        builder.Eventing.Subscribe<BeforeResourceStartedEvent>(resource, async (_, cancellationToken) =>
            await cluster.PrepareAsync(await password.GetValueAsync(cancellationToken) ?? "", cancellationToken));

        return postgres.WithSelectOneHealthCheck();
    }

    private static async Task PublishDatabaseStateAsync(IServiceProvider services, IResource server, string state)
    {
        var notifications = services.GetRequiredService<ResourceNotificationService>();
        var model = services.GetRequiredService<DistributedApplicationModel>();
        foreach (var database in model.Resources.OfType<ServiceDatabaseResource>().Where(db => db.Parent == server))
        {
            await notifications.PublishUpdateAsync(database, snapshot => snapshot with { State = state });
        }
    }

    private static IResourceBuilder<ServiceDatabaseResource> AddServiceDatabase(
        this IDistributedApplicationBuilder builder, ServiceDatabase database, IResourceWithConnectionString server, EndpointReference endpoint) =>
        builder.AddResource(new ServiceDatabaseResource(database, (IResourceWithEndpoints)server, endpoint))
            .WithIconName("Database")
            .WithSelectOneHealthCheck();

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

/// <summary>Marks a server whose roles and databases a run-once worker provisions, instead of the AppHost.</summary>
internal sealed record ProvisioningWorkerAnnotation(IResource Worker) : IResourceAnnotation;
