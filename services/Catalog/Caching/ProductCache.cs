using System.Text.Json;
using ShopReference.Catalog.Data;
using ShopReference.Catalog.Model;
using ShopReference.Valkey;
using ShopReference.Valkey.Caching;
using ShopReference.Valkey.Resilience;
using StackExchange.Redis;

namespace ShopReference.Catalog.Caching;

/// <summary>
/// The catalog's use of <see cref="SingleFlightCache"/>: products as JSON under <c>catalog:product:{id}</c>, a TTL with
/// jitter, negative caching of unknown ids, and stale-while-revalidate for hot keys. When Valkey cannot answer,
/// reads go straight to PostgreSQL (counted as degraded) and caching resumes by itself once it answers again.
/// </summary>
public sealed class ProductCache(SingleFlightCache cache, CatalogDatabase database, CatalogMetrics metrics, ILogger<ProductCache> logger)
{
    public static readonly CacheEntryOptions Entry = new()
    {
        TimeToLive = TimeSpan.FromMinutes(10),
        Jitter = 0.2,
        SoftTimeToLive = TimeSpan.FromMinutes(8),
        NegativeTimeToLive = TimeSpan.FromSeconds(30),
    };

    public static string Key(long id) => KeySchema.TaggedKey("catalog", "product", id.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public async Task<(Product? Product, CacheOutcome Outcome)> GetAsync(long id, CancellationToken cancellationToken)
    {
        try
        {
            var read = await cache.GetOrLoadAsync(Key(id), ct => LoadAsync(id, ct), Entry, cancellationToken);
            return (read.Payload is null ? null : JsonSerializer.Deserialize(read.Payload, CatalogJsonContext.Default.Product), read.Outcome);
        }
        catch (Exception ex) when (ValkeyFailures.IsUnavailable(ex))
        {
            metrics.Degraded();
            logger.LogWarning("Valkey unavailable, product {Id} read from PostgreSQL: {Message}", id, ex.Message);
            return (await database.GetAsync(id, cancellationToken), CacheOutcome.Miss);
        }
    }

    /// <summary>Write-through (and change-data capture): stores this version unless a newer one is already cached.</summary>
    public async Task<bool> StoreAsync(Product product)
    {
        try
        {
            return await cache.SetAsync(Key(product.Id), Serialize(product), Entry);
        }
        catch (Exception ex) when (ValkeyFailures.IsUnavailable(ex))
        {
            // The database has the write; the cached copy may be stale until change-data capture or its TTL fixes it.
            metrics.Degraded();
            logger.LogWarning("Valkey unavailable, product {Id} version {Version} not written through: {Message}", product.Id, product.Version, ex.Message);
            return false;
        }
    }

    public Task<bool> RemoveAsync(long id) => cache.RemoveAsync(Key(id));

    private async Task<OriginValue> LoadAsync(long id, CancellationToken cancellationToken) =>
        await database.GetAsync(id, cancellationToken) is { } product ? Serialize(product) : OriginValue.NotFound;

    private static OriginValue Serialize(Product product) =>
        new(JsonSerializer.SerializeToUtf8Bytes(product, CatalogJsonContext.Default.Product), product.Version);
}
