using Microsoft.Extensions.Configuration;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// The fixed ports of the public contract, each overridable (<c>Ports:Gateway</c>, <c>Ports:Valkey</c>,
/// <c>Ports:Postgres</c>); 0 lets the orchestrator choose, which tests use to run beside a live app.
/// </summary>
public sealed record PortSettings(int? Gateway, int? Valkey, int? Postgres)
{
    public static PortSettings From(IConfiguration configuration) => new(
        Read(configuration, "Gateway", 5000),
        Read(configuration, "Valkey", 6380),
        Read(configuration, "Postgres", 5433));

    /// <summary>
    /// Aspire picks a port for each service replica when the app starts and hands it over when the replica starts, which
    /// can be a minute later (replicas wait for Valkey and PostgreSQL). Local mode picks its Valkey cluster's node and
    /// bus ports the same way (<see cref="ShopReference.Hosting.LocalPorts"/>), and Aspire knows a node's client
    /// port but not its bus port: two pickers in one band can hand out one port twice, and the replica that binds it
    /// second dies at start. So the replicas get a band of their own, unless one is configured.
    /// </summary>
    public static void KeepReplicaPortsApart(IConfiguration configuration)
    {
        configuration["DcpPublisher:ProxylessEndpointPortRangeStart"] ??= ShopReference.Hosting.LocalPorts.ReplicaBandFirst.ToString(System.Globalization.CultureInfo.InvariantCulture);
        configuration["DcpPublisher:ProxylessEndpointPortRangeEnd"] ??= ShopReference.Hosting.LocalPorts.ReplicaBandLast.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static int? Read(IConfiguration configuration, string name, int contractPort)
    {
        var port = configuration.GetValue($"Ports:{name}", contractPort);
        return port is > 0 and <= 65535 ? port
            : port == 0 ? null
            : throw new DistributedApplicationException($"Ports:{name} = {port} is not a TCP port (use 0 to let the orchestrator choose).");
    }
}
