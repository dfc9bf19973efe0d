using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// The dashboard's <em>Simulate shoppers</em>, run as a user runs it, for 60 s: afterwards every pattern has moved
/// (counted on the servers, not taken from the simulation's word), and the best-selling board equals what the orders in
/// PostgreSQL add up to. It has an app of its own and runs alone: its thousands of views and orders would push the
/// other tests' products off the boards' top N, and its load would skew their counts of traces.
/// </summary>
[Collection(ShopperSimulationCollection.Name)]
public sealed class ShopperSimulationTests(ShopAppFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Sixty_seconds_of_shoppers_move_every_pattern_and_the_best_selling_board_matches_the_orders_in_postgres()
    {
        var gateway = fixture.Shop.App.Services.GetRequiredService<DistributedApplicationModel>().Resources.Single(r => r.Name == "rate-limit");
        var catalogBefore = await CatalogCountersAsync();
        var ordersBefore = await OrderCountAsync();

        var started = await fixture.Shop.App.Services.GetRequiredService<ResourceCommandService>().ExecuteCommandAsync(gateway, "simulate-shoppers",
            new InteractionInputCollection(
            [
                new InteractionInput { Name = "shoppers", Label = "Shoppers", InputType = InputType.Number, Value = "16" },
                new InteractionInput { Name = "seconds", Label = "Seconds", InputType = InputType.Number, Value = "60" },
            ]), Ct);
        Assert.True(started.Success, started.Message);
        var summary = await FinishedSummaryAsync();

        var catalogAfter = await CatalogCountersAsync();
        Assert.True(catalogAfter.Hits > catalogBefore.Hits, $"no cache hits: {summary}");
        Assert.True(catalogAfter.Coalesced > catalogBefore.Coalesced, $"no reader waited for another's load: {summary}");
        var rejected = Regex.Match(summary, @"429×(\d+)");
        Assert.True(rejected.Success && int.Parse(rejected.Groups[1].Value) > 0, $"no limiter rejection: {summary}");
        Assert.True(await OrderCountAsync() > ordersBefore, $"no checkout: {summary}");
        Assert.DoesNotContain("failed:", summary);
        await Eventually.UntilAsync(async () => (await BestSellingAsync()).SequenceEqual(await OrderedInPostgresAsync()),
            TimeSpan.FromSeconds(60), "the best-selling board never matched the orders in PostgreSQL", TimeSpan.FromMilliseconds(500), Ct);
    }

    // The gateway's "Shoppers" property once the run has ended.
    private async Task<string> FinishedSummaryAsync()
    {
        string? summary = null;
        await Eventually.UntilAsync(() =>
        {
            summary = fixture.Shop.App.ResourceNotifications.TryGetCurrentState("rate-limit", out var state)
                ? state.Snapshot.Properties.FirstOrDefault(p => p.Name == "Shoppers")?.Value as string : null;
            return Task.FromResult(summary is not null && (summary.StartsWith("finished", StringComparison.Ordinal) || summary.StartsWith("failed", StringComparison.Ordinal)));
        }, TimeSpan.FromMinutes(3), "the shoppers never finished", TimeSpan.FromMilliseconds(500), Ct);
        return summary!;
    }

    // Reads served from a cache (Valkey or in-process) and readers that waited for another's load, over both replicas.
    private async Task<(long Hits, long Coalesced)> CatalogCountersAsync()
    {
        long hits = 0, coalesced = 0;
        var token = await fixture.Shop.TokenAsync("operator", Ct);
        foreach (var replica in await fixture.Shop.ReplicaAddressesAsync("catalog", 2, TimeSpan.FromSeconds(30)))
        {
            using var http = new HttpClient { BaseAddress = replica };
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            var stats = await http.GetFromJsonAsync<JsonElement>("/api/catalog/stats", Ct);
            hits += stats.GetProperty("hits").GetInt64() + stats.GetProperty("localHits").GetInt64();
            coalesced += stats.GetProperty("coalesced").GetInt64();
        }
        return (hits, coalesced);
    }

    private async Task<long> OrderCountAsync()
    {
        await using var connection = new NpgsqlConnection(await fixture.Shop.App.GetConnectionStringAsync("cartdb", Ct));
        await connection.OpenAsync(Ct);
        await using var count = new NpgsqlCommand("select count(*) from orders", connection);
        return (long)(await count.ExecuteScalarAsync(Ct))!;
    }

    // The board's top 100 over 24 h, as (product, units); ties ordered by product id, as the board orders them.
    private async Task<List<(long Product, long Units)>> BestSellingAsync()
    {
        using var http = fixture.Shop.App.CreateHttpClient("analytics");
        var board = await http.GetFromJsonAsync<JsonElement>("/api/analytics/leaderboards/best-selling?window=24h&top=100", Ct);
        return [.. board.GetProperty("entries").EnumerateArray().Select(e => (e.GetProperty("productId").GetInt64(), e.GetProperty("count").GetInt64()))];
    }

    private async Task<List<(long Product, long Units)>> OrderedInPostgresAsync()
    {
        await using var connection = new NpgsqlConnection(await fixture.Shop.App.GetConnectionStringAsync("cartdb", Ct));
        await connection.OpenAsync(Ct);
        await using var units = new NpgsqlCommand("""
            select product_id, sum(quantity)::bigint from order_lines
            group by product_id order by sum(quantity) desc, product_id limit 100
            """, connection);
        var ordered = new List<(long, long)>();
        await using var reader = await units.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct)) ordered.Add((reader.GetInt64(0), reader.GetInt64(1)));
        return ordered;
    }
}
