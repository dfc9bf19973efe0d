using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// A product of the catalog's shape and size (about 250 bytes of JSON), for the caching scenarios. Immutable, and marked
/// so: HybridCache reuses the instance it holds only for a type marked <see cref="ImmutableObjectAttribute"/>.
/// </summary>
[ImmutableObject(true)]
public sealed record BenchProduct(long Id, string Sku, string Name, string Description, string Category, decimal Price, int Stock, int Version)
{
    public static BenchProduct Make(long id) => new(id, $"SKU-{id:000000}", $"Product {id}", $"Description of product {id}, long enough to look like one.",
        $"category-{1 + id % 20}", 5 + id % 995, (int)(id * 13 % 500), 1);

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, BenchJsonContext.Default.BenchProduct);
    public static BenchProduct FromJson(ReadOnlySpan<byte> json) => JsonSerializer.Deserialize(json, BenchJsonContext.Default.BenchProduct)!;
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(BenchProduct))]
public sealed partial class BenchJsonContext : JsonSerializerContext;
