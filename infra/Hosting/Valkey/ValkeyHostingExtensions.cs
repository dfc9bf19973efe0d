using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ShopReference.Hosting;

/// <summary>
/// The project's own Valkey hosting integration (Aspire.Hosting.Valkey is not served here).
/// One call, two backends: the <c>valkey/valkey</c> container, or a local <c>valkey-server</c>/<c>redis-server</c>
/// process. Both get a generated administrator password (letters and digits only: StackExchange.Redis connection
/// strings break on commas), one ACL user per service (<see cref="ValkeyAcl"/>), a memory limit with
/// <c>noeviction</c> (docs/security.md says why), a PING health check so <c>WaitFor</c> waits for a server that
/// answers, and persistence.
/// </summary>
public static partial class ValkeyHostingExtensions
{
    /// <summary>The image Containers mode runs (<c>Infrastructure:Valkey:Image</c>; the tests name a local stand-in).</summary>
    public const string DefaultImage = "docker.io/valkey/valkey:9.0";
    private const int ValkeyPort = 6379;

    /// <summary>What a server may use before it refuses writes (<c>Parameters:valkey-maxmemory</c>).</summary>
    public const string DefaultMaxMemory = "256mb";

    /// <summary>Adds Valkey <paramref name="name"/> (one server, or a cluster with <c>Infrastructure:Valkey:Topology=Cluster</c>) with the ACL users given; hand each service its user with <see cref="WithValkeyUser"/>.</summary>
    public static IResourceBuilder<IValkeyResource> AddValkey(
        this IDistributedApplicationBuilder builder, string name, InfrastructureMode mode, int? port, IEnumerable<ValkeyUser> users)
    {
        var password = builder.AddPasswordParameter($"{name}-password", "The Valkey administrator's password (the default user); services have users of their own.");
        var maxMemory = builder.AddParameter($"{name}-maxmemory", DefaultMaxMemory)
            .WithDescription("Valkey's memory limit (maxmemory: 256mb, 1gb …). At the limit writes are refused (noeviction): no key is evicted to make room.")
            .Resource;
        var settings = new ValkeySettings([.. users], maxMemory);
        var topology = ValkeyTopology.From(builder.Configuration);
        if (topology.IsCluster)
        {
            return mode == InfrastructureMode.Local
                ? builder.AddLocalValkeyCluster(name, password, port, settings, topology)
                : builder.ExecutionContext.IsPublishMode
                    ? throw new DistributedApplicationException(
                        "Infrastructure:Valkey:Topology=Cluster is for dotnet run (Local or Containers mode); a deployment runs one Valkey (docs/cluster.md).")
                    : builder.AddValkeyContainerCluster(name, password, port, settings, topology, ContainerImage.From(builder.Configuration, "Valkey", DefaultImage));
        }
        return mode == InfrastructureMode.Local
            ? builder.AddLocalValkey(name, password, port, settings)
            : builder.AddValkeyContainer(name, password, port, settings, ContainerImage.From(builder.Configuration, "Valkey", DefaultImage));
    }

    /// <summary>Hands a project the connection string of its own ACL user, as <c>ConnectionStrings__valkey</c>.</summary>
    public static IResourceBuilder<ProjectResource> WithValkeyUser(
        this IResourceBuilder<ProjectResource> project, IResourceBuilder<IValkeyResource> valkey, ValkeyUser user) =>
        project.WithEnvironment("ConnectionStrings__valkey", valkey.Resource.ConnectionStringFor(user))
            .WithReferenceRelationship(valkey.Resource)
            .WaitFor(valkey);

    private static IResourceBuilder<IValkeyResource> AddValkeyContainer(
        this IDistributedApplicationBuilder builder, string name, ParameterResource password, int? port, ValkeySettings settings, ContainerImage image)
    {
        var valkey = builder.AddResource(new ValkeyContainerResource(name, password))
            .WithImage(image.Name, image.Tag)
            .WithImageRegistry(image.Registry)
            .WithEndpoint(port: port, targetPort: ValkeyPort, name: "tcp")
            .WithEnvironment("VALKEY_PASSWORD", password)
            .WithEnvironment("VALKEY_SETTINGS", settings.Lines())
            .WithStartupDiagnosis(dataDirectory: null)
            // The passwords go into a config file only the server's user can read, not onto its command line; then the
            // image's own entrypoint starts the server, which gives /data to the 'valkey' user and drops root.
            .WithEntrypoint("/bin/sh")
            .WithArgs("-c",
                "umask 077 && " +
                "printf 'requirepass \"%s\"\\n' \"$VALKEY_PASSWORD\" > /tmp/valkey.conf && " +
                "printf '%s\\n' \"$VALKEY_SETTINGS\" >> /tmp/valkey.conf && " +
                "chown valkey:valkey /tmp/valkey.conf && " +
                "exec docker-entrypoint.sh valkey-server /tmp/valkey.conf --dir /data --appendonly yes --save 60 1000");
        valkey.WithVolume(ContainerVolumes.DataVolume(valkey), "/data");
        return builder.CreateResourceBuilder<IValkeyResource>(valkey.Resource).WithValkeyHealthCheck();
    }

    private static IResourceBuilder<IValkeyResource> AddLocalValkey(
        this IDistributedApplicationBuilder builder, string name, ParameterResource password, int? port, ValkeySettings settings)
    {
        var server = ServerBinaries.FindValkeyServer()
            ?? throw new DistributedApplicationException($"Local mode needs valkey-server or redis-server on PATH. {ServerBinaries.InstallHint}");
        var dataDirectory = LocalDataDirectory.For(builder, name);
        var resource = new LocalValkeyResource(name, server, builder.AppHostDirectory, password);

        var valkey = builder.AddResource(resource)
            // The orchestrator proxies the endpoint: clients get `port`, the server listens on the target port it allocates.
            .WithEndpoint(port: port, name: "tcp", scheme: "tcp")
            .WithArgs(context =>
            {
                context.Args.Add(Path.Combine(dataDirectory, "valkey.conf"));
                context.Args.Add("--port");
                context.Args.Add(resource.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
            })
            .WithIconName("Database")
            .WithStartupDiagnosis(dataDirectory);

        // Written at every start, so a password set or regenerated since the last run takes effect.
        builder.Eventing.Subscribe<BeforeResourceStartedEvent>(resource, async (_, cancellationToken) =>
        {
            ValkeySettings.ValidateMaxMemory(await settings.MaxMemory.GetValueAsync(cancellationToken));
            ValkeyConfigFile.Write(dataDirectory, await password.GetValueAsync(cancellationToken) ?? "", persistent: true,
                (await settings.Lines().GetValueAsync(cancellationToken) ?? "").Split('\n'));
        });

        return builder.CreateResourceBuilder<IValkeyResource>(valkey.Resource).WithValkeyHealthCheck();
    }

    private static IResourceBuilder<IValkeyResource> WithValkeyHealthCheck(this IResourceBuilder<IValkeyResource> valkey)
    {
        var key = $"{valkey.Resource.Name}_ping";
        var resource = valkey.Resource;
        valkey.ApplicationBuilder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            key,
            _ => new DelegateHealthCheck(async cancellationToken =>
                resource.PrimaryEndpoint.IsAllocated &&
                await RespProbe.PingAsync(resource.PrimaryEndpoint.Host, resource.PrimaryEndpoint.Port,
                    await resource.PasswordParameter.GetValueAsync(cancellationToken), cancellationToken)),
            failureStatus: default,
            tags: default));
        return valkey.WithHealthCheck(key);
    }
}

/// <summary>The configuration lines beyond the administrator's password: the ACL users and the memory limit.</summary>
internal sealed partial record ValkeySettings(IReadOnlyList<ValkeyUser> Users, ParameterResource MaxMemory)
{
    public static void ValidateMaxMemory(string? value)
    {
        if (value is null || !MemorySize().IsMatch(value))
        {
            throw new DistributedApplicationException($"valkey-maxmemory '{value}' is not a size such as 256mb or 1gb.");
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[1-9][0-9]{0,12}(b|kb|mb|gb)?$", System.Text.RegularExpressions.RegexOptions.IgnoreCase)]
    private static partial System.Text.RegularExpressions.Regex MemorySize();

    public ReferenceExpression Lines()
    {
        var lines = new ReferenceExpressionBuilder();
        foreach (var user in Users)
        {
            lines.AppendLiteral($"user {user.Name} reset on >");
            lines.AppendFormatted(user.Password);
            lines.AppendLiteral($" {user.Permissions}\n");
        }
        lines.AppendLiteral("maxmemory ");
        lines.AppendFormatted(MaxMemory);
        // State that is not a cache (sessions, counters, claims) must never be evicted to make room: refuse writes instead.
        lines.AppendLiteral("\nmaxmemory-policy noeviction");
        return lines.Build();
    }
}
