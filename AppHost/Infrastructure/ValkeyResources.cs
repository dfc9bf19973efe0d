namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// The connection string every Valkey backend offers: <c>host:port,password=…</c> (StackExchange.Redis format), the
/// administrator's; <see cref="ConnectionStringFor"/> gives a service user's.
/// </summary>
public interface IValkeyResource : IResourceWithConnectionString
{
    ParameterResource PasswordParameter { get; }
    EndpointReference PrimaryEndpoint { get; }

    /// <summary><c>host:port,user=…,password=…</c> for one ACL user.</summary>
    ReferenceExpression ConnectionStringFor(ValkeyUser user) => ReferenceExpression.Create(
        $"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)},user={user.Name},password={user.Password}");
}

/// <summary>Valkey in the <c>valkey/valkey</c> container image (what most users have, and what azd deploys).</summary>
public sealed class ValkeyContainerResource(string name, ParameterResource password)
    : ContainerResource(name), IValkeyResource
{
    public ParameterResource PasswordParameter { get; } = password;
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");
    public ReferenceExpression ConnectionStringExpression => ValkeyConnectionString.For(this);
}

/// <summary>Valkey (or redis-server) as a local process started by the orchestrator, for machines without a container engine.</summary>
public sealed class LocalValkeyResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IValkeyResource
{
    public ParameterResource PasswordParameter { get; } = password;
    public EndpointReference PrimaryEndpoint => field ??= new(this, "tcp");
    public ReferenceExpression ConnectionStringExpression => ValkeyConnectionString.For(this);
}

internal static class ValkeyConnectionString
{
    public static ReferenceExpression For(IValkeyResource valkey) =>
        ReferenceExpression.Create(
            $"{valkey.PrimaryEndpoint.Property(EndpointProperty.HostAndPort)},password={valkey.PasswordParameter}");
}
