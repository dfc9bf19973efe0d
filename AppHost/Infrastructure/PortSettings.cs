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

    private static int? Read(IConfiguration configuration, string name, int contractPort)
    {
        var port = configuration.GetValue($"Ports:{name}", contractPort);
        return port is > 0 and <= 65535 ? port
            : port == 0 ? null
            : throw new DistributedApplicationException($"Ports:{name} = {port} is not a TCP port (use 0 to let the orchestrator choose).");
    }
}
