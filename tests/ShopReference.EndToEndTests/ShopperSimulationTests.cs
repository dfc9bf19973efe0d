using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>
/// The dashboard's <c>shoppers</c> resource, started as a user starts it, runs for 60 s and ends: afterwards every pattern has moved
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
        var catalogBefore = await CatalogCountersAsync();
        var ordersBefore = await OrderCountAsync();
        Assert.True(fixture.Shop.App.ResourceNotifications.TryGetCurrentState(Shoppers, out var idle), "no shoppers resource");
        Assert.Equal(KnownResourceStates.NotStarted, idle.Snapshot.State?.Text); // explicit start: nothing shops until asked

        var started = await fixture.Shop.App.Services.GetRequiredService<ResourceCommandService>()
            .ExecuteCommandAsync(Shoppers, KnownResourceCommands.StartCommand, Ct);
        Assert.True(started.Success, started.Message);
        var summary = await FinishedSummaryAsync();

        var catalogAfter = await CatalogCountersAsync();
        Assert.True(catalogAfter.Hits > catalogBefore.Hits, $"no cache hits: {summary}");
        Assert.True(catalogAfter.Coalesced > catalogBefore.Coalesced, $"no reader waited for another's load: {summary}");
        var rejected = Regex.Match(summary, @"429×(\d+)");
        Assert.True(rejected.Success && int.Parse(rejected.Groups[1].Value) > 0, $"no limiter rejection: {summary}");
        Assert.Matches(@"[1-9]\d* stampedes", summary); // the hot-key expiries went through the catalog's operator route
        Assert.True(await OrderCountAsync() > ordersBefore, $"no checkout: {summary}");
        await Eventually.UntilAsync(async () => (await BestSellingAsync()).SequenceEqual(await OrderedInPostgresAsync()),
            TimeSpan.FromSeconds(60), "the best-selling board never matched the orders in PostgreSQL", TimeSpan.FromMilliseconds(500), Ct);

        // A minute of every pattern ran on the Valkey users' allow-lists: nothing a service sent was refused.
        var refused = await RefusedByAclAsync();
        Assert.True(refused.Count == 0, $"ACL LOG holds refusals of what the services sent:\n{string.Join("\n", refused)}");
    }

    // ACL LOG on every node, less what the client library sends on its own and does without: its replica probe (a SET of
    // a key named by the connection's 16-byte GUID, outside every service's keys; docs/security.md) and CLIENT SETINFO
    // (its name and version, which a newer server knows and the allow-list does not name).
    private async Task<List<string>> RefusedByAclAsync()
    {
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await fixture.Shop.App.GetConnectionStringAsync("valkey", Ct) + ",allowAdmin=true");
        var refused = new List<string>();
        foreach (var server in valkey.GetServers())
        {
            foreach (var entry in (RedisResult[])(await server.ExecuteAsync("ACL", "LOG"))!)
            {
                var pairs = ((RedisResult[])entry!).Chunk(2).ToDictionary(pair => (string)pair[0]!, pair => pair[1]);
                var fields = pairs.ToDictionary(pair => pair.Key, pair => pair.Value.ToString());
                var probe = fields["reason"] == "key" && ((byte[])pairs["object"]!).Length == 16 && fields["client-info"].Contains(" cmd=set ", StringComparison.Ordinal);
                var clientName = fields["reason"] == "command" && fields["object"] == "client|setinfo";
                if (!probe && !clientName)
                {
                    refused.Add($"{server.EndPoint}: {string.Join(", ", fields.Where(f => f.Key != "client-info").Select(f => $"{f.Key}={f.Value}"))}; " +
                        $"{fields.GetValueOrDefault("client-info")}");
                }
            }
        }
        return refused;
    }

    private const string Shoppers = ShopApp.ShoppersResource;

    // The run's last words, once the resource has ended: it must end on its own, with exit code 0 and its summary.
    private async Task<string> FinishedSummaryAsync()
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        limit.CancelAfter(TimeSpan.FromMinutes(3));
        var ended = await fixture.Shop.App.ResourceNotifications.WaitForResourceAsync(Shoppers,
            e => e.Snapshot.State?.Text is { } state && KnownResourceStates.TerminalStates.Contains(state), limit.Token);
        var log = await ShopReference.Hosting.ResourceLogs.LastLinesAsync(
            fixture.Shop.App.Services.GetRequiredService<ResourceLoggerService>(), ended.ResourceId, 200, Ct);
        Assert.True(ended.Snapshot.ExitCode == 0, $"the shoppers ended with exit code {ended.Snapshot.ExitCode}:\n{string.Join("\n", log)}");
        return log.LastOrDefault(line => line.Contains("Shoppers finished:", StringComparison.Ordinal))
            ?? throw new Xunit.Sdk.XunitException($"no summary in the shoppers' log:\n{string.Join("\n", log)}");
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
