using Microsoft.AspNetCore.Builder;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Which replica answered: every response of a service carries <c>X-Replica</c>, the replica's name as the dashboard
/// shows it (the orchestrator's <c>service.instance.id</c>), or a random name elsewhere; never a host name or process
/// id. The stampede command counts its answers by it.
/// </summary>
public static class Replicas
{
    public const string Header = "X-Replica";

    public static string Name { get; } = DashboardName() ?? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));

    public static WebApplication UseReplicaHeader(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            context.Response.Headers[Header] = Name;
            return next(context);
        });
        return app;
    }

    /// <summary><c>{service}-{instance id}</c>, as the dashboard lists a replica, from what the orchestrator gives it.</summary>
    private static string? DashboardName()
    {
        var service = Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME");
        var instance = Environment.GetEnvironmentVariable("OTEL_RESOURCE_ATTRIBUTES")?.Split(',').Select(pair => pair.Split('=', 2))
            .FirstOrDefault(pair => pair.Length == 2 && pair[0].Trim() == "service.instance.id")?[1].Trim();
        return string.IsNullOrEmpty(service) || string.IsNullOrEmpty(instance) ? null : $"{service}-{instance}";
    }
}
