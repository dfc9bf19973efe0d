using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ShopReference.ServiceClients;

/// <summary>What another service needs to know of a product.</summary>
[System.ComponentModel.ImmutableObject(true)]
public sealed record CatalogProduct(long Id, string Name, decimal Price);

/// <summary>
/// Looks products up in the catalog by service discovery (<c>https+http://catalog</c>) for the services that need
/// them (the cart's names and prices, analytics' "does this product exist"), and keeps answers for a minute in
/// HybridCache (in-process, then Valkey), so a cart view does not call the catalog once per line per request. Returns null for an unknown product; throws
/// <see cref="DependencyUnavailableException"/> when the catalog cannot answer (a 503 with <c>Retry-After</c> unless
/// the caller degrades). A lookup carries no client context, so the catalog
/// does not count it as a visitor's view. Its resilience is tightened (see
/// <see cref="Resilience"/>): a cart must not wait 30 seconds for a catalog that is down.
/// </summary>
public sealed class CatalogClient(HttpClient http, HybridCache cache)
{
    /// <summary>About one break of the circuit (see <see cref="Resilience"/>).</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private static readonly HybridCacheEntryOptions Entry = new() { Expiration = TimeSpan.FromMinutes(1), LocalCacheExpiration = TimeSpan.FromSeconds(30) };

    private static readonly HybridCacheEntryOptions Fresh = new()
    {
        Expiration = Entry.Expiration,
        LocalCacheExpiration = Entry.LocalCacheExpiration,
        Flags = HybridCacheEntryFlags.DisableLocalCacheRead | HybridCacheEntryFlags.DisableDistributedCacheRead,
    };

    /// <param name="fresh">Ask the catalog itself (checkout's price snapshot); the answer still refreshes the cache.</param>
    public async Task<CatalogProduct?> GetAsync(long productId, CancellationToken cancellationToken, bool fresh = false)
    {
        try
        {
            return await LookUpAsync(productId, fresh, cancellationToken);
        }
        catch (Exception ex) when (ex is HttpRequestException or Polly.ExecutionRejectedException)
        {
            // A refused connection, an error status, an open circuit or a resilience timeout: one exception for callers.
            throw new DependencyUnavailableException("The catalog cannot answer right now.", RetryAfter, ex);
        }
    }

    private async Task<CatalogProduct?> LookUpAsync(long productId, bool fresh, CancellationToken cancellationToken)
    {
        var found = await cache.GetOrCreateAsync($"product:{productId}", async ct =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/catalog/products/{productId}");
            using var response = await http.SendAsync(request, ct);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return new Lookup(null);
            }
            response.EnsureSuccessStatusCode();
            return new Lookup(await response.Content.ReadFromJsonAsync<CatalogProduct>(ct));
        }, fresh ? Fresh : Entry, cancellationToken: cancellationToken);
        return found.Product;
    }

    /// <summary>
    /// Two quick retries within a 5-second budget, instead of the defaults' 30 seconds. An attempt gets 2 seconds: a
    /// catalog replica's first requests after a start, on a starved CPU, took over one (CI's cluster pass answered a
    /// cart 503 with 1-second attempts), and a catalog that is down refuses at once anyway.
    /// </summary>
    public static void Resilience(Microsoft.Extensions.Http.Resilience.HttpStandardResilienceOptions options)
    {
        options.AttemptTimeout.Timeout = TimeSpan.FromSeconds(2);
        options.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(5);
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.Delay = TimeSpan.FromMilliseconds(100);
    }

    // Wrapped so that "not found" is cached too, for the same minute.
    // Marked immutable (it is), so HybridCache hands out the instance its memory holds instead of decoding a copy per hit.
    [System.ComponentModel.ImmutableObject(true)]
    public sealed record Lookup(CatalogProduct? Product);
}

public static class CatalogClientExtensions
{
    /// <summary>
    /// Registers <see cref="CatalogClient"/>. The defaults' resilience handler is replaced, not stacked (two pipelines
    /// would multiply the retries); RemoveAllResilienceHandlers is marked for evaluation (EXTEXP0001) and is the
    /// documented way to do this.
    /// </summary>
    public static IHostApplicationBuilder AddCatalogClient(this IHostApplicationBuilder builder)
    {
#pragma warning disable EXTEXP0001
        builder.Services.AddHttpClient<CatalogClient>(http => http.BaseAddress = new Uri("https+http://catalog"))
            .RemoveAllResilienceHandlers()
            .AddStandardResilienceHandler(CatalogClient.Resilience);
#pragma warning restore EXTEXP0001
        return builder;
    }
}
