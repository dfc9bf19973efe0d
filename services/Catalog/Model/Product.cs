using System.Text.Json;
using System.Text.Json.Serialization;

namespace ShopReference.Catalog.Model;

/// <summary>A product as stored in PostgreSQL and cached in Valkey; <see cref="Version"/> is its optimistic-concurrency token.</summary>
public sealed record Product(long Id, string Sku, string Name, string Description, string Category, decimal Price, int Stock, int Version, DateTimeOffset UpdatedAt)
{
    /// <summary>The strong ETag of this version, e.g. <c>"v3"</c> (a header, not part of the body).</summary>
    [JsonIgnore]
    public string ETag => $"\"v{Version}\"";
}

/// <summary>The body of <c>PUT /api/catalog/products/{id}</c>.</summary>
public sealed record ProductUpdate(string? Name, string? Description, string? Category, decimal? Price, int? Stock);

/// <summary>One page of a listing.</summary>
public sealed record ProductPage(IReadOnlyList<Product> Items, int Page, int PageSize, long Total);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(Product))]
[JsonSerializable(typeof(ProductUpdate))]
[JsonSerializable(typeof(ProductPage))]
public sealed partial class CatalogJsonContext : JsonSerializerContext;
