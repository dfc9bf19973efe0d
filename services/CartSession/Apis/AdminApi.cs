using Microsoft.AspNetCore.Http.HttpResults;
using StackExchange.Redis;

namespace ShopReference.CartSession.Apis;

public sealed record LiveSessions(long Sessions, long WithItems);

/// <summary>Operator routes of cart-session (permission <c>operator</c>), behind the dashboard's commands.</summary>
public static class AdminApi
{
    public static IEndpointRouteBuilder MapCartAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("admin").WithTags("Cart operations").RequireAuthorization(Permissions.Operator);
        admin.MapGet("sessions", CountSessionsAsync).WithName("CountLiveSessions")
            .WithSummary("Counts the live cart sessions (cart:session:* keys, by SCAN) and how many hold items.");
        return app;
    }

    /// <summary>
    /// Sessions expire by themselves (sliding idle timeout), so the live ones are exactly the session keys that exist.
    /// They are counted with a non-blocking <c>SCAN</c> on every primary, never <c>KEYS</c>, which would stall every
    /// other client on a large keyspace.
    /// </summary>
    public static async Task<Ok<LiveSessions>> CountSessionsAsync(IConnectionMultiplexer multiplexer, CancellationToken cancellationToken)
    {
        long sessions = 0, withItems = 0;
        var database = multiplexer.GetDatabase();
        foreach (var server in multiplexer.GetServers().Where(s => !s.IsReplica && s.IsConnected))
        {
            await foreach (var key in server.KeysAsync(pattern: "cart:session:*", pageSize: 1000).WithCancellation(cancellationToken))
            {
                sessions++;
                if (await database.HashLengthAsync(key) > 1) // the "s" marker plus at least one line
                {
                    withItems++;
                }
            }
        }
        return TypedResults.Ok(new LiveSessions(sessions, withItems));
    }
}
