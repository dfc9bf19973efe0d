using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ShopReference.Hosting;

/// <summary>
/// Containers mode with <c>Infrastructure:Valkey:Topology=Cluster</c>: every node of the cluster in one container of the
/// Valkey image, each a <c>valkey-server</c> on a port of its own, published on the same port of the host. A cluster
/// tells clients and its other nodes one address per node; inside one container and on the host alike that address
/// is <c>127.0.0.1:port</c>, so the services (on the host) and the nodes (gossip, replication) reach each node by the
/// same announced address, on Docker Desktop as on Linux, with no host networking and no hostname support in the
/// client. The price: the nodes share the container's fate, as Local mode's share the machine's. Nodes run as the
/// image's non-root user, with the passwords in files only that user reads.
/// </summary>
public static partial class ValkeyHostingExtensions
{
    private static IResourceBuilder<IValkeyResource> AddValkeyContainerCluster(this IDistributedApplicationBuilder builder, string name,
        ParameterResource password, int? port, ValkeySettings settings, ValkeyTopology topology, ContainerImage image)
    {
        // The ports are kept beside Local mode's data (Infrastructure:DataDirectory): the volume's nodes.conf records them.
        var nodes = NodePorts(LocalDataDirectory.For(builder, $"{name}-cluster"), topology, port);
        var resource = new ValkeyContainerClusterResource(name, password, nodes);
        var valkey = builder.AddResource(resource)
            .WithImage(image.Name, image.Tag)
            .WithImageRegistry(image.Registry)
            .WithEnvironment("VALKEY_PASSWORD", password)
            .WithEnvironment("VALKEY_SETTINGS", settings.Lines())
            .WithEnvironment("VALKEY_NODES", string.Join(' ', nodes.Select(n => string.Create(CultureInfo.InvariantCulture, $"{n.Port}:{n.BusPort}"))))
            .WithStartupDiagnosis(dataDirectory: null)
            .WithEntrypoint("/bin/sh")
            .WithArgs("-c", StartNodesScript);
        for (var i = 0; i < nodes.Count; i++)
        {
            // Not proxied, and the same port inside and out: a node's announced address must reach that node from both sides.
            valkey.WithEndpoint(port: nodes[i].Port, targetPort: nodes[i].Port, name: i == 0 ? "tcp" : $"node{i}", scheme: "tcp", isProxied: false);
        }
        valkey.WithVolume(ContainerVolumes.DataVolume(valkey), "/data");

        var formation = new ClusterFormation(nodes, password, topology.Shards,
            nodePort => ($"{name} (node on port {nodePort.ToString(CultureInfo.InvariantCulture)})", $"/data/{nodePort.ToString(CultureInfo.InvariantCulture)} in the volume {ContainerVolumes.DataVolume(valkey)}"));
        var key = $"{name}_cluster";
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(key,
            services => formation.WithDiagnosis(services, resource), failureStatus: default, tags: default));
        return builder.CreateResourceBuilder<IValkeyResource>(resource).WithHealthCheck(key);
    }

    // Per node: a data folder on the volume and a private config file; then the servers as the image's 'valkey' user,
    // each pid kept (a test kills one node as a crash would). The shell stays as PID 1: it passes a stop on to the
    // nodes and ends when they have.
    private static readonly string StartNodesScript = new StringBuilder()
        .Append("umask 077; ")
        .Append("for node in $VALKEY_NODES; do port=${node%%:*}; bus=${node##*:}; ")
        .Append("mkdir -p /data/$port; conf=/tmp/valkey-$port.conf; ")
        .Append("printf 'requirepass \"%s\"\\nmasterauth \"%s\"\\n' \"$VALKEY_PASSWORD\" \"$VALKEY_PASSWORD\" > $conf; ")
        .Append("printf '%s\\n' \"$VALKEY_SETTINGS\" >> $conf; ")
        .Append("printf 'cluster-enabled yes\\ncluster-config-file nodes.conf\\ncluster-node-timeout 3000\\ncluster-announce-ip 127.0.0.1\\n' >> $conf; ")
        .Append("chown valkey:valkey $conf || exit 1; done; ")
        .Append("chown -R valkey:valkey /data || exit 1; ")
        .Append("for node in $VALKEY_NODES; do port=${node%%:*}; bus=${node##*:}; ")
        .Append("setpriv --reuid=valkey --regid=valkey --clear-groups -- valkey-server /tmp/valkey-$port.conf ")
        .Append("--port $port --cluster-port $bus --dir /data/$port --appendonly yes --save 60 1000 & ")
        .Append("echo $! > /tmp/valkey-$port.pid; done; ")
        .Append("trap 'kill $(cat /tmp/valkey-*.pid) 2>/dev/null' TERM INT; ")
        .Append("wait")
        .ToString();
}

/// <summary>
/// A Valkey cluster in one container (Containers mode, <c>Infrastructure:Valkey:Topology=Cluster</c>): endpoint
/// <c>tcp</c> is the first node, <c>node1</c> … the others; the connection string lists every node.
/// </summary>
public sealed class ValkeyContainerClusterResource(string name, ParameterResource password, IReadOnlyList<ValkeyNodePorts> nodes)
    : ContainerResource(name), IValkeyResource
{
    /// <inheritdoc/>
    public ParameterResource PasswordParameter { get; } = password;
    /// <inheritdoc/>
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");
    /// <summary>Every node's client and bus port.</summary>
    public IReadOnlyList<ValkeyNodePorts> Nodes { get; } = nodes;
    /// <inheritdoc/>
    public ReferenceExpression Seeds => ReferenceExpression.Create($"{string.Join(',', Nodes.Select(n => $"127.0.0.1:{n.Port}"))}");
    /// <inheritdoc/>
    public ReferenceExpression ConnectionStringExpression => ValkeyConnectionString.For(this);
}
