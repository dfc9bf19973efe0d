using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard command on the catalog: expire one hot product and fire a concurrent burst at it through the gateway, so a
/// user can watch the herd being held back: one <c>X-Cache: miss</c> (one origin load), the rest coalesced or hits.
/// The eviction is an operator route called with an operator's token; the burst is a partner client's reads.
/// </summary>
public static class CatalogCommands
{
    private const int HotProduct = 1;
    private const int Burst = 100; // three runs a minute fit the stampede client's read quota (300 a minute)

    public static IResourceBuilder<ProjectResource> WithStampedeCommand(
        this IResourceBuilder<ProjectResource> catalog, IResourceBuilder<ProjectResource> gateway, ShopAuth auth)
    {
        if (!catalog.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return catalog;
        }
        return catalog.WithCommand("stampede", "Expire a hot key and fire a burst", async context =>
        {
            if (await EvictAsync(catalog, gateway, auth, HotProduct, context.CancellationToken) is { } refused)
            {
                return CommandResults.Failure($"The catalog refused the eviction: {refused}.");
            }

            var key = await auth.StampedeKey.GetValueAsync(context.CancellationToken) ?? "";
            using var http = new HttpClient { BaseAddress = new Uri(gateway.GetEndpoint("http").Url) };
            if (await GatewayQuota.LeftAsync(http, key, context.CancellationToken) is { } quota && quota.Remaining < Burst)
            {
                return CommandResults.Failure($"The stampede client's read quota is spent ({quota.Remaining} of 300 left this minute): " +
                    $"run it again in {quota.ResetSeconds} s.");
            }
            var outcomes = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
            var replicas = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
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
                if (response.Headers.TryGetValues("X-Replica", out var replica)) replicas.AddOrUpdate(replica.Single(), 1, (_, n) => n + 1);
            }).ToArray();
            start.Release(Burst);
            await Task.WhenAll(requests);

            var summary = $"{Burst} concurrent reads of expired product {HotProduct}: " +
                string.Join(", ", outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Value} {o.Key}")) +
                "; answered by " + string.Join(", ", replicas.OrderBy(r => r.Key, StringComparer.Ordinal).Select(r => $"{r.Key} ({r.Value})")) +
                ". One 'miss' means one origin load for the whole burst, across the replicas.";
            context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(catalog.Resource).LogInformation("{Summary}", summary);
            return CommandResults.Success(summary);
        }, new CommandOptions
        {
            Description = "Evicts catalog:product:{1} (operator route) and sends 100 concurrent reads for it through the gateway.",
            IconName = "Flash",
            UpdateState = CommandState.EnabledWhenHealthy,
        });
    }

    /// <summary>
    /// Expires a product's cache entry through the catalog's operator route, with an operator's token from the gateway;
    /// null when done, else the status it was refused with.
    /// </summary>
    public static async Task<int?> EvictAsync(IResourceBuilder<ProjectResource> catalog, IResourceBuilder<ProjectResource> gateway, ShopAuth auth,
        long product, CancellationToken cancellationToken)
    {
        using var admin = new HttpClient { BaseAddress = new Uri(catalog.GetEndpoint("http").Url) };
        using var evict = new HttpRequestMessage(HttpMethod.Delete, $"/admin/cache/products/{product}");
        evict.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await auth.OperatorTokenAsync(gateway, cancellationToken));
        using var evicted = await admin.SendAsync(evict, cancellationToken);
        return evicted.IsSuccessStatusCode ? null : (int)evicted.StatusCode;
    }
}
