using Microsoft.Extensions.Caching.Hybrid;

namespace ShopReference.Catalog.Analytics;

public sealed record TrendingEntry(long ProductId, long Count);

/// <summary>
/// Reads the most-viewed leaderboard from the analytics service by service discovery (<c>https+http://analytics</c>),
/// within a 2-second deadline, and keeps the answer 30 seconds in HybridCache. If analytics cannot answer,
/// the list is empty (and not cached): trending is decoration, never a reason for the catalog to fail.
/// </summary>
public sealed class TrendingClient(HttpClient http, HybridCache cache, ILogger<TrendingClient> logger)
{
    private static readonly HybridCacheEntryOptions Entry = new() { Expiration = TimeSpan.FromSeconds(30), LocalCacheExpiration = TimeSpan.FromSeconds(10) };

    public async Task<(IReadOnlyList<TrendingEntry> Entries, bool Degraded)> TopAsync(string window, int top, CancellationToken cancellationToken)
    {
        // Bounded: the standard resilience handler would retry for up to 30 s, far longer than trending is worth.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            var entries = await cache.GetOrCreateAsync($"trending:{window}:{top}", async ct =>
            {
                var board = await http.GetFromJsonAsync<Board>($"/api/analytics/leaderboards/most-viewed?window={window}&top={top}", ct);
                return board?.Entries.Select(e => new TrendingEntry(e.ProductId, e.Count)).ToArray() ?? [];
            }, Entry, cancellationToken: deadline.Token);
            return (entries, false);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or Polly.ExecutionRejectedException or System.Text.Json.JsonException && !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(ex, "Trending products unavailable: analytics did not answer. Serving an empty list.");
            return ([], true);
        }
    }

    private sealed record Board(IReadOnlyList<BoardEntry> Entries);
    private sealed record BoardEntry(long ProductId, long Count);
}
