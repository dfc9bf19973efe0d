namespace ShopReference.Hosting;

/// <summary>
/// The connection string every Valkey backend offers: <c>host:port,password=…</c> (StackExchange.Redis format), the
/// administrator's; <see cref="ConnectionStringFor"/> gives a service user's.
/// </summary>
public interface IValkeyResource : IResourceWithConnectionString
{
/// <summary>The administrator's (default user's) password.</summary>
    ParameterResource PasswordParameter { get; }
/// <summary>The endpoint clients connect to (a cluster's first node).</summary>
    EndpointReference PrimaryEndpoint { get; }

    /// <summary>Where a client starts: the one server, or every node of a cluster (any of them tells the client the rest).</summary>
    ReferenceExpression Seeds => ReferenceExpression.Create($"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)}");

    /// <summary><c>host:port,user=…,password=…</c> for one ACL user.</summary>
    ReferenceExpression ConnectionStringFor(ValkeyUser user) => ReferenceExpression.Create(
        $"{Seeds},user={user.Name},password={user.Password}");
}

/// <summary>Valkey in the <c>valkey/valkey</c> container image (what most users have, and what azd deploys).</summary>
public sealed class ValkeyContainerResource(string name, ParameterResource password)
    : ContainerResource(name), IValkeyResource
{
    /// <inheritdoc/>
    public ParameterResource PasswordParameter { get; } = password;
    /// <inheritdoc/>
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");
    /// <inheritdoc/>
    public ReferenceExpression ConnectionStringExpression => ValkeyConnectionString.For(this);
}

/// <summary>Valkey (or redis-server) as a local process started by the orchestrator, for machines without a container engine.</summary>
public sealed class LocalValkeyResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IValkeyResource
{
    /// <inheritdoc/>
    public ParameterResource PasswordParameter { get; } = password;
    /// <inheritdoc/>
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");
    /// <inheritdoc/>
    public ReferenceExpression ConnectionStringExpression => ValkeyConnectionString.For(this);
}

/// <summary>
/// The first node of a local Valkey cluster (Local mode, <c>Infrastructure:Valkey:Topology=Cluster</c>): it listens on
/// the Valkey port, and its connection string lists every node. The other nodes are <see cref="LocalValkeyNodeResource"/>s.
/// </summary>
public sealed class LocalValkeyClusterResource(string name, string command, string workingDirectory, ParameterResource password,
    IReadOnlyList<ValkeyNodePorts> nodes)
    : ExecutableResource(name, command, workingDirectory), IValkeyResource
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

/// <summary>Another node of a local Valkey cluster, shown under the first one in the dashboard.</summary>
public sealed class LocalValkeyNodeResource(string name, string command, string workingDirectory, IResource cluster)
    : ExecutableResource(name, command, workingDirectory), IResourceWithParent
{
    /// <summary>The cluster's first node.</summary>
    public IResource Parent { get; } = cluster;
}

internal static class ValkeyConnectionString
{
    public static ReferenceExpression For(IValkeyResource valkey) =>
        ReferenceExpression.Create($"{valkey.Seeds},password={valkey.PasswordParameter}");
}
