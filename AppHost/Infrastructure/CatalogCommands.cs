using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard command on the catalog: expire one hot product and fire a concurrent burst at it through the gateway, so a
/// user can watch the herd being held back: one <c>X-Cache: miss</c> (one origin load), the rest coalesced or hits.
/// </summary>
public static class CatalogCommands
{
    private const int HotProduct = 1;
    private const int Burst = 200; // within the demo client's read quota

    public static IResourceBuilder<ProjectResource> WithStampedeCommand(
        this IResourceBuilder<ProjectResource> catalog, IResourceBuilder<IValkeyResource> valkey, IResourceBuilder<ProjectResource> gateway)
    {
        var demoKey = gateway.Resource.Annotations.OfType<DemoApiKeyAnnotation>().SingleOrDefault()?.Key;
        if (demoKey is null || !catalog.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return catalog;
        }
        return catalog.WithCommand("stampede", "Expire a hot key and fire a burst", async context =>
        {
            await using (var connection = await ConnectionMultiplexer.ConnectAsync(await valkey.Resource.ConnectionStringExpression.GetValueAsync(context.CancellationToken) ?? ""))
            {
                await connection.GetDatabase().KeyDeleteAsync($"catalog:product:{{{HotProduct}}}");
            }

            var key = DemoApiKeyAnnotation.StampedeKey(await demoKey.GetValueAsync(context.CancellationToken) ?? "");
            using var http = new HttpClient { BaseAddress = new Uri(gateway.GetEndpoint("http").Url) };
            var outcomes = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
            using var start = new SemaphoreSlim(0);
            var requests = Enumerable.Range(0, Burst).Select(async _ =>
            {
                await start.WaitAsync(context.CancellationToken);
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/catalog/products/{HotProduct}");
                request.Headers.Add("X-Api-Key", key);
                using var response = await http.SendAsync(request, context.CancellationToken);
                var outcome = response.StatusCode == HttpStatusCode.OK && response.Headers.TryGetValues("X-Cache", out var values)
                    ? values.Single() : ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
                outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
            }).ToArray();
            start.Release(Burst);
            await Task.WhenAll(requests);

            var summary = $"{Burst} concurrent reads of expired product {HotProduct}: " +
                string.Join(", ", outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Value} {o.Key}")) +
                ". One 'miss' means one origin load for the whole burst.";
            context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(catalog.Resource).LogInformation("{Summary}", summary);
            return CommandResults.Success(summary);
        }, new CommandOptions
        {
            Description = "Deletes catalog:product:{1} and sends 200 concurrent reads for it through the gateway.",
            IconName = "Flash",
            UpdateState = DemoApiKeyAnnotation.EnabledWhenHealthy,
        });
    }
}

/// <summary>Marks the gateway with the demo API client's key parameter, for the commands that send traffic through it.</summary>
public sealed record DemoApiKeyAnnotation(ParameterResource Key) : IResourceAnnotation
{
    /// <summary>The key of the second demo client (<c>dashboard-stampede</c>), derived from the same secret.</summary>
    public static string StampedeKey(string demoKey) => demoKey + "-stampede";

    /// <summary>Traffic commands make sense only against a resource that is up.</summary>
    public static ResourceCommandState EnabledWhenHealthy(UpdateCommandStateContext context) =>
        context.ResourceSnapshot.HealthStatus == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy
            ? ResourceCommandState.Enabled
            : ResourceCommandState.Disabled;
}
