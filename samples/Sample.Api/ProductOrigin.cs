using System.Text.Json;
using ShopReference.Valkey.Caching;

namespace Sample.Api;

/// <summary>
/// Stands in for your database: a slow read, counted, so the cache's promise (one origin load per key however many
/// callers miss at once) can be seen from outside at <c>GET /stats</c>.
/// </summary>
public sealed class ProductOrigin(TimeSpan latency)
{
    private long _loads;

    public long Loads => Interlocked.Read(ref _loads);

    public async Task<OriginValue> LoadAsync(long id, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _loads);
        await Task.Delay(latency, cancellationToken); // the query's round trip
        if (id is < 1 or > 1000)
        {
            return OriginValue.NotFound; // cached briefly too, so unknown ids do not reach the database either
        }
        // The version must rise with every change of the row (an updated_at tick, a row version): the cache keeps
        // the higher of two versions, which is what stops a slow, older load from overwriting a newer write.
        var product = new { id, name = $"Product {id}", price = 10m + id };
        return new OriginValue(JsonSerializer.SerializeToUtf8Bytes(product), Version: 1);
    }
}
