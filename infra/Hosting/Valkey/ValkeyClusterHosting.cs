using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ShopReference.Hosting;

/// <summary>
/// Local mode with <c>Infrastructure:Valkey:Topology=Cluster</c>: one process per node, each with its own data folder,
/// the same passwords, ACL users and memory limit as the single server, and cluster mode on. The first node is the
/// <c>valkey</c> resource and listens on the Valkey port, so <c>redis-cli -c -p 6380</c> reaches the cluster.
/// The nodes keep their data in a folder of their own (<c>valkey-cluster/</c> beside the single server's <c>valkey/</c>):
/// a node started on a single server's data would claim the slots of the keys it loads and the cluster could not form,
/// so switching the topology back and forth on one data folder finds each topology's own data again.
/// </summary>
public static partial class ValkeyHostingExtensions
{
    private static IResourceBuilder<IValkeyResource> AddLocalValkeyCluster(this IDistributedApplicationBuilder builder, string name,
        ParameterResource password, int? port, ValkeySettings settings, ValkeyTopology topology)
    {
        var server = ServerBinaries.FindValkeyServer()
            ?? throw new DistributedApplicationException($"Local mode needs valkey-server or redis-server on PATH. {ServerBinaries.InstallHint}");
        var clusterDirectory = LocalDataDirectory.For(builder, $"{name}-cluster");
        var nodes = NodePorts(clusterDirectory, topology, port);
        var first = new LocalValkeyClusterResource(name, server, builder.AppHostDirectory, password, nodes);
        var nodeNames = Enumerable.Range(0, nodes.Count).Select(i => i == 0 ? name : $"{name}-{i}").ToList();
        var nodeNameOfPort = nodes.Select((node, i) => (node.Port, Name: nodeNames[i])).ToDictionary(n => n.Port, n => n.Name);
        var formation = new ClusterFormation(nodes, password, topology.Shards,
            port => (nodeNameOfPort[port], Path.Combine(clusterDirectory, nodeNameOfPort[port])));

        var resources = new List<(IResource Resource, int Port)>();
        for (var i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            var nodeName = nodeNames[i];
            var resource = i == 0 ? (ExecutableResource)first : new LocalValkeyNodeResource(nodeName, server, builder.AppHostDirectory, first);
            resources.Add((resource, node.Port));
            var dataDirectory = Path.Combine(clusterDirectory, nodeName);
            // Not proxied: the cluster tells clients each node's own address (MOVED), so nothing may stand in between.
            builder.AddResource(resource)
                .WithEndpoint(port: node.Port, targetPort: node.Port, name: "tcp", scheme: "tcp", isProxied: false)
                .WithArgs(Path.Combine(dataDirectory, "valkey.conf"),
                    "--port", node.Port.ToString(CultureInfo.InvariantCulture),
                    "--cluster-port", node.BusPort.ToString(CultureInfo.InvariantCulture))
                .WithIconName("Database")
                .WithStartupDiagnosis(dataDirectory);
            builder.Eventing.Subscribe<BeforeResourceStartedEvent>(resource, async (_, cancellationToken) =>
            {
                ValkeySettings.ValidateMaxMemory(await settings.MaxMemory.GetValueAsync(cancellationToken));
                var secret = await password.GetValueAsync(cancellationToken) ?? "";
                ValkeyConfigFile.Write(dataDirectory, secret, persistent: true,
                    [.. (await settings.Lines().GetValueAsync(cancellationToken) ?? "").Split('\n'), .. ValkeyClusterFormation.NodeSettings(secret)]);
            });
        }

        builder.Eventing.Subscribe<ResourceReadyEvent>(first, (ready, cancellationToken) =>
        {
            _ = ShowRolesAsync(ready.Services, resources, password);
            return Task.CompletedTask;
        });

        // Healthy once every node answers and they have been joined into one cluster with every slot served: the
        // services' WaitFor(valkey) holds them until then.
        var key = $"{name}_cluster";
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(key,
            services => formation.WithDiagnosis(services, first), failureStatus: default, tags: default));
        return builder.CreateResourceBuilder<IValkeyResource>(first).WithHealthCheck(key);
    }

    private const string RoleProperty = "valkey.cluster.role";

    /// <summary>
    /// Shows each node's role on its resource in the dashboard (a highlighted property), read every few seconds from
    /// <c>CLUSTER NODES</c>: after a failover the promoted replica shows as primary and the dead node as failed.
    /// </summary>
    private static async Task ShowRolesAsync(IServiceProvider services, IReadOnlyList<(IResource Resource, int Port)> nodes, ParameterResource password)
    {
        var notifications = services.GetRequiredService<ResourceNotificationService>();
        var stopping = services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping;
        var shown = new Dictionary<int, string>();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(3));
        try
        {
            do
            {
                var roles = await ValkeyClusterRoles.ReadAsync(nodes.Select(n => n.Port), await password.GetValueAsync(stopping) ?? "", stopping);
                foreach (var (resource, port) in nodes)
                {
                    var role = roles.GetValueOrDefault(port, "not answering");
                    if (shown.GetValueOrDefault(port) == role) continue;
                    shown[port] = role;
                    await notifications.PublishUpdateAsync(resource, snapshot => snapshot with
                    {
                        Properties = [.. snapshot.Properties.Where(p => p.Name != RoleProperty),
                            new ResourcePropertySnapshot(RoleProperty, role) { DisplayName = "Cluster role", IsHighlighted = true }],
                    });
                }
            }
            while (await timer.WaitForNextTickAsync(stopping));
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    // A cluster's nodes record each other's addresses in nodes.conf, so a second run on the same data folder must find
    // them on the same ports. Chosen ports (no fixed Valkey port, as in the tests) are therefore kept beside the data.
    private static IReadOnlyList<ValkeyNodePorts> NodePorts(string dataDirectory, ValkeyTopology topology, int? port)
    {
        var file = Path.Combine(dataDirectory, "cluster-ports");
        if (port is null && File.Exists(file))
        {
            var kept = File.ReadAllLines(file).Select(line => line.Split(' ')).Where(parts => parts.Length == 2)
                .Select(parts => new ValkeyNodePorts(int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture)))
                .ToList();
            if (kept.Count == topology.Nodes)
            {
                return kept;
            }
        }
        var nodes = topology.Ports(port);
        Directory.CreateDirectory(dataDirectory);
        File.WriteAllLines(file, nodes.Select(n => string.Create(CultureInfo.InvariantCulture, $"{n.Port} {n.BusPort}")));
        return nodes;
    }

    /// <summary>
    /// Forms the cluster once, when every node first answers; a failed attempt is retried by the next check. Its health
    /// report says what it waits on (a node that does not answer, formation under way) or why formation failed and
    /// what to do; a refusal is also shown on the resource and on every resource that waits for it.
    /// </summary>
    private sealed class ClusterFormation(IReadOnlyList<ValkeyNodePorts> nodes, ParameterResource password, int shards,
        Func<int, (string Name, string DataDirectory)> nodeOfPort) : IHealthCheck
    {
        private readonly Lock _gate = new();
        private Task? _forming;
        private volatile string _stage = "Forming the cluster.";
        private StartupDiagnosis.Reporter? _reporter;
        private IResource? _resource;

        public ClusterFormation WithDiagnosis(IServiceProvider services, IResource resource)
        {
            _reporter ??= services.GetService<StartupDiagnosis.Reporter>();
            _resource = resource;
            return this;
        }

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var secret = await password.GetValueAsync(cancellationToken) ?? "";
            Task? forming;
            lock (_gate)
            {
                forming = _forming;
            }
            if (forming is null)
            {
                foreach (var node in nodes)
                {
                    if (!await RespProbe.PingAsync("127.0.0.1", node.Port, secret, cancellationToken))
                    {
                        return HealthCheckResult.Unhealthy($"Waiting for {nodeOfPort(node.Port).Name} (127.0.0.1:{node.Port}) to answer PING.");
                    }
                }
                lock (_gate)
                {
                    // Not tied to this check's token: forming takes longer than one health check may.
                    forming = _forming ??= ValkeyClusterFormation.FormAsync(nodes, secret, shards, TimeSpan.FromMinutes(2), CancellationToken.None,
                        new Progress<string>(stage => _stage = stage));
                }
            }
            if (!forming.IsCompleted)
            {
                return HealthCheckResult.Unhealthy(_stage);
            }
            if (!forming.IsCompletedSuccessfully)
            {
                lock (_gate)
                {
                    _forming = null;
                }
                var reason = forming.Exception!.InnerException!;
                var advice = reason is ValkeyClusterFormationException refused && nodeOfPort(refused.Port) is var (node, folder)
                    ? $"{reason.Message} It is {node}, whose data folder is {folder}: delete that folder (cached, rebuildable data) " +
                      "and start again, or start with the topology that wrote it."
                    : $"{reason.Message} The nodes' console logs say why; docs/troubleshooting.md lists the usual causes.";
                if (_reporter is not null && _resource is not null)
                {
                    await _reporter.ReportAsync(_resource, advice, cancellationToken);
                }
                return HealthCheckResult.Unhealthy(advice, reason);
            }
            return await RespProbe.PingAsync("127.0.0.1", nodes[0].Port, secret, cancellationToken)
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy($"{nodeOfPort(nodes[0].Port).Name} (127.0.0.1:{nodes[0].Port}) does not answer PING.");
        }
    }
}
