using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Wraps the Valkey output-cache store so that an unreachable Valkey makes cached routes slower, never failing:
/// a failed read is a cache miss, and a failed write or eviction is logged and skipped. An eviction lost this way
/// leaves at most the page's own expiry of staleness once Valkey returns.
/// </summary>
public sealed class DegradingOutputCacheStore(IOutputCacheStore inner, ILogger<DegradingOutputCacheStore> logger) : IOutputCacheBufferStore
{
    /// <summary>The Valkey store itself, for a caller that must know an eviction failed (change-data capture).</summary>
    public IOutputCacheStore Inner => inner;

    public async ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            return await inner.GetAsync(key, cancellationToken);
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            logger.LogWarning("Output cache unavailable, serving uncached: {Message}", ex.Message);
            return null;
        }
    }

    public async ValueTask<bool> TryGetAsync(string key, PipeWriter destination, CancellationToken cancellationToken)
    {
        try
        {
            if (inner is IOutputCacheBufferStore buffers)
            {
                return await buffers.TryGetAsync(key, destination, cancellationToken);
            }
            var bytes = await inner.GetAsync(key, cancellationToken);
            if (bytes is null)
            {
                return false;
            }
            await destination.WriteAsync(bytes, cancellationToken);
            return true;
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            logger.LogWarning("Output cache unavailable, serving uncached: {Message}", ex.Message);
            return false;
        }
    }

    public ValueTask SetAsync(string key, byte[] value, string[]? tags, TimeSpan validFor, CancellationToken cancellationToken) =>
        Guard(() => inner.SetAsync(key, value, tags, validFor, cancellationToken), "store a page");

    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, ReadOnlyMemory<string> tags, TimeSpan validFor, CancellationToken cancellationToken) =>
        inner is IOutputCacheBufferStore buffers
            ? Guard(() => buffers.SetAsync(key, value, tags, validFor, cancellationToken), "store a page")
            : Guard(() => inner.SetAsync(key, value.ToArray(), tags.ToArray(), validFor, cancellationToken), "store a page");

    public ValueTask EvictByTagAsync(string tag, CancellationToken cancellationToken) =>
        Guard(() => inner.EvictByTagAsync(tag, cancellationToken), $"evict tag '{tag}'");

    private async ValueTask Guard(Func<ValueTask> operation, string what)
    {
        try
        {
            await operation();
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            logger.LogWarning("Output cache unavailable, could not {What}: {Message}", what, ex.Message);
        }
    }

    private static bool IsOutage(Exception ex) => ShopReference.Valkey.Resilience.ValkeyFailures.IsUnavailable(ex);
}
