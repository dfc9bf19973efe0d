using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using ShopReference.LocalServers;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// The project's own Valkey hosting integration (Aspire.Hosting.Valkey is not served here).
/// One call, two backends: the <c>valkey/valkey</c> container, or a local <c>valkey-server</c>/<c>redis-server</c>
/// process. Both get a generated password (letters and digits only: StackExchange.Redis connection strings
/// break on commas), a PING health check so <c>WaitFor</c> waits for a server that answers, and persistence.
/// </summary>
public static class ValkeyHostingExtensions
{
    public const string Image = "valkey/valkey";
    public const string ImageTag = "9.0";
    private const int ValkeyPort = 6379;

    public static IResourceBuilder<IValkeyResource> AddValkey(
        this IDistributedApplicationBuilder builder, string name, InfrastructureMode mode, int? port)
    {
        var password = builder.AddPasswordParameter($"{name}-password");
        return mode == InfrastructureMode.Local
            ? builder.AddLocalValkey(name, password, port)
            : builder.AddValkeyContainer(name, password, port);
    }

    private static IResourceBuilder<IValkeyResource> AddValkeyContainer(
        this IDistributedApplicationBuilder builder, string name, ParameterResource password, int? port)
    {
        var valkey = builder.AddResource(new ValkeyContainerResource(name, password))
            .WithImage(Image, ImageTag)
            .WithImageRegistry("docker.io")
            .WithEndpoint(port: port, targetPort: ValkeyPort, name: "tcp")
            .WithVolume($"{name}-data", "/data")
            .WithEnvironment("VALKEY_PASSWORD", password)
            // The password goes into a config file inside the container, not onto the server's command line.
            .WithEntrypoint("/bin/sh")
            .WithArgs("-c",
                "printf 'requirepass \"%s\"\\n' \"$VALKEY_PASSWORD\" > /tmp/valkey.conf && " +
                "exec valkey-server /tmp/valkey.conf --dir /data --appendonly yes --save 60 1000");
        return builder.CreateResourceBuilder<IValkeyResource>(valkey.Resource).WithValkeyHealthCheck();
    }

    private static IResourceBuilder<IValkeyResource> AddLocalValkey(
        this IDistributedApplicationBuilder builder, string name, ParameterResource password, int? port)
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
            .WithIconName("Database");

        // Written at every start, so a password set or regenerated since the last run takes effect.
        builder.Eventing.Subscribe<BeforeResourceStartedEvent>(resource, async (_, cancellationToken) =>
            ValkeyConfigFile.Write(dataDirectory, await password.GetValueAsync(cancellationToken) ?? "", persistent: true));

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
