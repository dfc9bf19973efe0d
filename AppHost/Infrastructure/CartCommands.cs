using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard command on cart-session: count the live cart sessions in Valkey. Sessions expire by themselves (sliding
/// idle timeout), so the live ones are exactly the session keys that exist; the command counts them with a
/// non-blocking <c>SCAN</c> (never <c>KEYS</c>, which would stall every other client on a large keyspace).
/// </summary>
public static class CartCommands
{
    public static IResourceBuilder<ProjectResource> WithLiveSessionsCommand(this IResourceBuilder<ProjectResource> cart, IResourceBuilder<IValkeyResource> valkey)
    {
        if (!cart.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return cart;
        }
        return cart.WithCommand("live-sessions", "Count live sessions", async context =>
        {
            var connectionString = await valkey.Resource.ConnectionStringExpression.GetValueAsync(context.CancellationToken) ?? "";
            await using var connection = await ConnectionMultiplexer.ConnectAsync(connectionString);
            long sessions = 0, withLines = 0;
            var database = connection.GetDatabase();
            foreach (var server in connection.GetServers().Where(s => !s.IsReplica))
            {
                await foreach (var key in server.KeysAsync(pattern: "cart:session:*", pageSize: 1000).WithCancellation(context.CancellationToken))
                {
                    sessions++;
                    if (await database.HashLengthAsync(key) > 1) // the "s" marker plus at least one line
                    {
                        withLines++;
                    }
                }
            }
            var summary = $"{sessions} live cart sessions ({withLines} with items in the cart).";
            context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(cart.Resource).LogInformation("{Summary}", summary);
            return CommandResults.Success(summary);
        }, new CommandOptions
        {
            Description = "Counts the cart:session:* keys in Valkey with SCAN; each is a session that has not idled out.",
            IconName = "People",
            UpdateState = DemoApiKeyAnnotation.EnabledWhenHealthy,
        });
    }
}
