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
/// jitter, negative caching of unknown ids, and stale-while-revalidate for hot keys, with a <see cref="NearCache"/> in
/// front (on unless <c>Catalog:NearCache:Enabled</c> is false). When Valkey cannot answer, reads go straight to
/// PostgreSQL (counted as degraded) and caching resumes by itself once it answers again.
/// </summary>
public sealed class ProductCache(NearCache cache, CatalogDatabase database, CatalogMetrics metrics, ILogger<ProductCache> logger)
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
            // Product is an immutable record: a near-cache hit hands out the instance it decoded once.
            return await cache.GetOrLoadAsync(Key(id), ct => LoadAsync(id, ct), Entry, Deserialize, cancellationToken);
        }
        catch (Exception ex) when (ValkeyFailures.IsUnavailable(ex))
        {
            metrics.Degraded();
            logger.LogWarning("Valkey unavailable, product {Id} read from PostgreSQL: {Message}", id, ex.Message);
            return (await database.GetAsync(id, cancellationToken), CacheOutcome.Miss);
        }
    }

    /// <summary>
    /// The API's write-through: stores this version unless a newer one is cached. When Valkey is unavailable the write
    /// is not lost — the database has it, and the change feed applies it once Valkey is back — so this degrades to false.
    /// </summary>
    public async Task<bool> StoreAsync(Product product)
    {
        try
        {
            return await cache.SetAsync(Key(product.Id), Serialize(product), Entry);
        }
        catch (Exception ex) when (ValkeyFailures.IsUnavailable(ex))
        {
            metrics.Degraded();
            logger.LogWarning("Valkey unavailable, product {Id} version {Version} not written through (the change feed will): {Message}", product.Id, product.Version, ex.Message);
            return false;
        }
    }

    /// <summary>
    /// Change-data capture's write: this committed version (version-guarded, so replaying it is harmless). It throws
    /// when Valkey cannot take it: the feed must not confirm a change it did not apply.
    /// </summary>
    /// <param name="inserted">The row was created: it may replace the tombstone of an earlier deletion of the same id.</param>
    public Task ApplyChangeAsync(Product product, bool inserted) => cache.SetAsync(Key(product.Id), Serialize(product), Entry, inserted);

    /// <summary>Change-data capture's delete: a tombstone, so no load that read the row before can bring it back. Throws like <see cref="ApplyChangeAsync"/>.</summary>
    public Task ApplyDeleteAsync(long id) => cache.DeleteAsync(Key(id));

    /// <summary>Evicts one product's entry (the operator's stampede demonstration); the next read loads it.</summary>
    public Task<bool> EvictAsync(long id) => cache.RemoveAsync(Key(id));

    /// <summary>After a bulk removal of product entries: every replica's near cache drops what it holds. Throws when Valkey cannot take it.</summary>
    public Task FlushNearCachesAsync() => cache.FlushEverywhereAsync();

    /// <summary>The pattern that finds every product entry (and its lock and fence) with SCAN.</summary>
    public const string KeyPattern = "catalog:product:{*}*";

    private async Task<OriginValue> LoadAsync(long id, CancellationToken cancellationToken) =>
        await database.GetAsync(id, cancellationToken) is { } product ? Serialize(product) : OriginValue.NotFound;

    private static Product Deserialize(byte[] payload) => JsonSerializer.Deserialize(payload, CatalogJsonContext.Default.Product)!;

    private static OriginValue Serialize(Product product) =>
        new(JsonSerializer.SerializeToUtf8Bytes(product, CatalogJsonContext.Default.Product), product.Version);
}
