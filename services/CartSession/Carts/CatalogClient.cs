using System.Net;
using Microsoft.Extensions.Caching.Hybrid;

namespace ShopReference.CartSession.Carts;

/// <summary>What the cart needs to know of a product.</summary>
public sealed record CatalogProduct(long Id, string Name, decimal Price);

/// <summary>
/// Looks products up in the catalog by service discovery (<c>https+http://catalog</c>), with the standard resilience
/// handler from ServiceDefaults, and keeps answers for a minute in HybridCache (in-process, then Valkey), so a cart
/// view does not call the catalog once per line per request. Returns null for an unknown product; throws
/// <see cref="HttpRequestException"/> when the catalog cannot answer.
/// </summary>
public sealed class CatalogClient(HttpClient http, HybridCache cache)
{
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
        var found = await cache.GetOrCreateAsync($"product:{productId}", async ct =>
        {
            using var response = await http.GetAsync($"/api/catalog/products/{productId}", ct);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return new Lookup(null);
            }
            response.EnsureSuccessStatusCode();
            return new Lookup(await response.Content.ReadFromJsonAsync<CatalogProduct>(ct));
        }, fresh ? Fresh : Entry, cancellationToken: cancellationToken);
        return found.Product;
    }

    // Wrapped so that "not found" is cached too, for the same minute.
    public sealed record Lookup(CatalogProduct? Product);
}
