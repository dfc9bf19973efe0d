using System.Diagnostics;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What a service is connected to, proven by one round trip to each dependency. <see cref="Instance"/> (host and
/// process) and <see cref="DatabaseServerVersion"/> describe the host, so only an operator sees them.
/// </summary>
public sealed record WiringReport(string Service, string? Instance, double ValkeyRoundTripMs, string? Database, string? DatabaseServerVersion);

public static class WiringEndpoint
{
    /// <summary>
    /// <c>GET {prefix}/wiring</c>: a PING to Valkey and a <c>select current_database()</c> when the service has a
    /// database, so a user (and the end-to-end tests) can see that service discovery, Valkey and PostgreSQL are wired.
    /// </summary>
    public static RouteHandlerBuilder MapWiringEndpoint(this IEndpointRouteBuilder endpoints, string prefix, string service) =>
        endpoints.MapGet($"{prefix}/wiring", async (IServiceProvider services, HttpContext http, CancellationToken cancellationToken) =>
        {
            var multiplexer = services.GetRequiredService<IConnectionMultiplexer>();
            var started = Stopwatch.GetTimestamp();
            await multiplexer.GetDatabase().PingAsync();
            var roundTrip = Stopwatch.GetElapsedTime(started).TotalMilliseconds;

            string? database = null, version = null;
            if (services.GetService<NpgsqlDataSource>() is { } dataSource)
            {
                await using var command = dataSource.CreateCommand("select current_database(), current_setting('server_version')");
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                (database, version) = (reader.GetString(0), reader.GetString(1));
            }
            var user = await http.AuthenticateAsync(); // the route is anonymous; a token only adds detail
            return user.Succeeded && user.Principal.Has(Permissions.Operator)
                ? TypedResults.Ok(new WiringReport(service, Environment.MachineName + ":" + Environment.ProcessId, roundTrip, database, version))
                : TypedResults.Ok(new WiringReport(service, null, roundTrip, database, null));
        })
        .WithName($"{service}-wiring")
        .WithSummary("Proves the service's wiring: one round trip to Valkey and to its database. Host details only for an operator.")
        .WithTags("Diagnostics");
}
