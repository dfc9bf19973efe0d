using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ShopReference.Testing;
using ShopReference.Valkey.Analytics;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Analytics in the running app: events from the catalog and from outside reach the views exactly once, the catalog
/// shows trending products, bad events are 400s, and the replay command changes no count. Each test uses its own
/// product ids (other tests view products too).
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class AnalyticsApiTests(ShopAppFixture fixture)
{
    private const int ViewedProduct = 9001;
    private const int SoldProduct = 9002;
    private const int RebuiltProduct = 9003;
    private DistributedApplication App => fixture.Shop.App;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Catalog_views_count_exactly_once_in_the_leaderboard_survive_a_replay_and_show_as_trending()
    {
        using var catalog = App.CreateHttpClient("catalog");
        using var analytics = App.CreateHttpClient("analytics");
        using var gateway = App.CreateHttpClient("rate-limit");
        for (var i = 0; i < 4; i++)
        {
            using var view = await catalog.GetAsync($"/api/catalog/products/{ViewedProduct}", Ct);
            Assert.Equal(HttpStatusCode.OK, view.StatusCode);
        }
        // A visitor cannot hide a view by posing as a service: the gateway strips the marker, so this one counts.
        using (var posing = new HttpRequestMessage(HttpMethod.Get, $"/api/catalog/products/{ViewedProduct}"))
        {
            posing.Headers.Add(EventRules.ServiceLookupHeader, "cart-session");
            using var view = await gateway.SendAsync(posing, Ct);
            Assert.Equal(HttpStatusCode.OK, view.StatusCode);
        }
        // The cart's own price lookup of the product is not a view.
        using (var cart = CartHttp.Client(App.GetEndpoint("cart-session", "http")))
        using (var added = await cart.SendAsync(HttpMethod.Post, "/api/cart/items", null, new { productId = ViewedProduct, quantity = 1 }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, added.StatusCode);
        }
        await Eventually.UntilAsync(async () => await CountAsync(analytics, "most-viewed", ViewedProduct) == 5, TimeSpan.FromSeconds(30),
            "five views of the product in the leaderboard", cancellationToken: Ct);

        // The dashboard command re-sends the last 100 entries: every one is a duplicate by its id.
        var commands = App.Services.GetRequiredService<ResourceCommandService>();
        var instance = (await fixture.Shop.WaitForHealthyInstancesAsync("analytics", 2, TimeSpan.FromSeconds(30))).First();
        var replay = await commands.ExecuteCommandAsync(instance, "replay-events", Ct);
        Assert.True(replay.Success, replay.Message);
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        await Eventually.UntilAsync(async () => await GroupDrainedAsync(valkey.GetDatabase()), TimeSpan.FromSeconds(30), "the replayed entries consumed", cancellationToken: Ct);
        Assert.Equal(5, await CountAsync(analytics, "most-viewed", ViewedProduct));

        await Eventually.UntilAsync(async () =>
        {
            var trending = await gateway.GetFromJsonAsync<JsonElement>("/api/catalog/products/trending?window=24h&top=50", Ct);
            return !trending.GetProperty("degraded").GetBoolean() &&
                trending.GetProperty("products").EnumerateArray().Any(p => p.GetProperty("productId").GetInt64() == ViewedProduct && p.GetProperty("name").GetString() == $"Product {ViewedProduct}");
        }, TimeSpan.FromSeconds(90), "the product among the catalog's trending products", poll: TimeSpan.FromSeconds(2), cancellationToken: Ct);
    }

    [Fact]
    public async Task A_posted_order_counts_in_best_selling_the_time_series_and_unique_visitors()
    {
        using var gateway = App.CreateHttpClient("rate-limit");
        using var analytics = App.CreateHttpClient("analytics");
        var visitor = "e2e-" + Guid.NewGuid().ToString("N");

        using var posted = await gateway.PostAsJsonAsync("/api/analytics/events", new
        {
            type = "order.placed",
            visitorId = visitor,
            lines = new[] { new { productId = SoldProduct, quantity = 3 } },
        }, Ct);

        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        await Eventually.UntilAsync(async () => await CountAsync(analytics, "best-selling", SoldProduct) == 3, TimeSpan.FromSeconds(30),
            "three units in the best-selling board", cancellationToken: Ct);
        var orders = await analytics.GetFromJsonAsync<JsonElement>("/api/analytics/timeseries/orders?minutes=5", Ct);
        Assert.Equal(5, orders.GetProperty("points").GetArrayLength());
        Assert.True(orders.GetProperty("points").EnumerateArray().Sum(p => p.GetProperty("value").GetInt64()) >= 1);
        var uniques = await analytics.GetFromJsonAsync<JsonElement>($"/api/analytics/uniques?day={DateTime.UtcNow:yyyy-MM-dd}", Ct);
        Assert.True(uniques.GetProperty("visitors").GetInt64() >= 1);
    }

    [Fact]
    public async Task Rolled_up_hours_come_back_from_postgres_after_valkey_lost_a_bucket()
    {
        using var analytics = App.CreateHttpClient("analytics");
        var at = DateTimeOffset.UtcNow;
        using var posted = await analytics.PostAsJsonAsync("/api/analytics/events", new { type = "order.placed", timestamp = at, lines = new[] { new { productId = RebuiltProduct, quantity = 4 } } }, Ct);
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        await Eventually.UntilAsync(async () => await CountAsync(analytics, "best-selling", RebuiltProduct) == 4, TimeSpan.FromSeconds(30), "the order applied", cancellationToken: Ct);
        using var rollup = await analytics.PostAsync("/admin/rollup", null, Ct);
        Assert.Equal(HttpStatusCode.OK, rollup.StatusCode);

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        var bucket = AnalyticsKeys.Bucket("sold", at.UtcDateTime);
        await valkey.GetDatabase().SortedSetRemoveAsync(bucket, RebuiltProduct); // Valkey lost it
        var instance = (await fixture.Shop.WaitForHealthyInstancesAsync("analytics", 2, TimeSpan.FromSeconds(30))).First();
        var rebuild = await App.Services.GetRequiredService<ResourceCommandService>().ExecuteCommandAsync(instance, "rebuild-leaderboards", Ct);

        Assert.True(rebuild.Success, rebuild.Message);
        Assert.Equal(4, await valkey.GetDatabase().SortedSetScoreAsync(bucket, RebuiltProduct));
        Assert.Equal(4, await CountAsync(analytics, "best-selling", RebuiltProduct));
    }

    [Theory]
    [InlineData("{\"type\":\"product.liked\",\"productId\":1}")]
    [InlineData("{\"type\":\"product.viewed\"}")]
    [InlineData("{\"type\":\"cart.item_added\",\"productId\":1,\"quantity\":0}")]
    [InlineData("{\"type\":\"order.placed\",\"lines\":[]}")]
    [InlineData("{\"type\":\"product.viewed\",\"productId\":1,\"timestamp\":\"2001-01-01T00:00:00Z\"}")]
    [InlineData("{\"type\":\"product.viewed\",\"productId\":1,\"timestamp\":\"2999-01-01T00:00:00Z\"}")]
    [InlineData("{\"type\":\"product.viewed\",\"productId\":1,\"id\":\"has spaces\"}")]
    [InlineData("{ not json")]
    public async Task A_bad_event_is_a_400_problem(string body)
    {
        using var analytics = App.CreateHttpClient("analytics");

        using var response = await analytics.PostAsync("/api/analytics/events", new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task An_oversized_event_is_a_400_and_bad_query_values_are_400s()
    {
        using var analytics = App.CreateHttpClient("analytics");
        var padding = new string('x', AnalyticsApiMaxBytes);

        using var oversized = await analytics.PostAsync("/api/analytics/events",
            new StringContent($"{{\"type\":\"product.viewed\",\"productId\":1,\"pad\":\"{padding}\"}}", System.Text.Encoding.UTF8, "application/json"), Ct);
        using var board = await analytics.GetAsync("/api/analytics/leaderboards/most-liked", Ct);
        using var window = await analytics.GetAsync("/api/analytics/leaderboards/most-viewed?window=2h", Ct);
        using var top = await analytics.GetAsync("/api/analytics/leaderboards/most-viewed?top=1000", Ct);
        using var day = await analytics.GetAsync("/api/analytics/uniques?day=26-11-2026", Ct);
        using var minutes = await analytics.GetAsync("/api/analytics/timeseries/views?minutes=100000", Ct);

        Assert.All(new[] { oversized, board, window, top, day, minutes }, r => Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode));
    }

    private const int AnalyticsApiMaxBytes = 4096;

    // The 24h window, so a test that runs across the turn of an hour still sees its events; read past the view's
    // 30 s cache (the test polls, and a view computed before the events arrived would otherwise be served).
    private async Task<long> CountAsync(HttpClient analytics, string board, long productId)
    {
        await using (var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? ""))
        {
            await valkey.GetDatabase().KeyDeleteAsync(AnalyticsKeys.View(Boards.Names[board], "24h"));
        }
        var leaderboard = await analytics.GetFromJsonAsync<JsonElement>($"/api/analytics/leaderboards/{board}?window=24h&top=100", Ct);
        return leaderboard.GetProperty("entries").EnumerateArray()
            .Where(e => e.GetProperty("productId").GetInt64() == productId)
            .Select(e => e.GetProperty("count").GetInt64()).SingleOrDefault();
    }

    private static async Task<bool> GroupDrainedAsync(IDatabase database)
    {
        var group = (await database.StreamGroupInfoAsync(AnalyticsKeys.Stream)).Single(g => g.Name == AnalyticsKeys.ConsumerGroup);
        return group.Lag == 0 && group.PendingMessageCount == 0;
    }
}
