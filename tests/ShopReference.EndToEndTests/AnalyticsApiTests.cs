using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ShopReference.Testing;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
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
    private const int PostedViewProduct = 9004;
    private DistributedApplication App => fixture.Shop.App;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Views_through_the_gateway_count_exactly_once_survive_a_replay_and_show_as_trending()
    {
        using var analytics = App.CreateHttpClient("analytics");
        using var catalog = App.CreateHttpClient("catalog");
        using var gateway = fixture.Shop.GatewayAsNewClient(out _);
        for (var i = 0; i < 4; i++)
        {
            using var view = await gateway.GetAsync($"/api/catalog/products/{ViewedProduct}", Ct);
            Assert.Equal(HttpStatusCode.OK, view.StatusCode);
        }
        // A client cannot pose as another visitor: the gateway replaces a client-context header it did not write.
        using (var posing = new HttpRequestMessage(HttpMethod.Get, $"/api/catalog/products/{ViewedProduct}"))
        {
            posing.Headers.Add("X-Shop-Client", "forged");
            using var view = await gateway.SendAsync(posing, Ct);
            Assert.Equal(HttpStatusCode.OK, view.StatusCode);
        }
        // Reads that did not come through the gateway are not visitors' views: a forged context straight at the
        // catalog, and the cart's own price lookup.
        using (var forged = new HttpRequestMessage(HttpMethod.Get, $"/api/catalog/products/{ViewedProduct}"))
        {
            forged.Headers.Add("X-Shop-Client", Forgery.Token(fixture.Shop.SigningKey + "-not-it", "shopreference-client-context", ("visitor", "forged")));
            using var read = await catalog.SendAsync(forged, Ct);
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        }
        using (var cart = CartHttp.Client(App.GetEndpoint("cart-session", "http")))
        using (var added = await cart.SendAsync(HttpMethod.Post, "/api/cart/items", null, new { productId = ViewedProduct, quantity = 1 }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, added.StatusCode);
        }
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        // The catalog appends views off the request path, so the answers can come before the events: wait for the five,
        // then for the group to be drained, and require still five (a sixth, counted twice or forged, would show here).
        await UntilConsumedAsync(async () => await CountAsync(analytics, "most-viewed", ViewedProduct) >= 5, "the views counted");
        await UntilConsumedAsync(async () => await GroupDrainedAsync(valkey.GetDatabase()), "the views consumed");
        Assert.Equal(5, await CountAsync(analytics, "most-viewed", ViewedProduct));

        // The dashboard command re-sends the last 100 entries: every one is a duplicate by its id.
        var commands = App.Services.GetRequiredService<ResourceCommandService>();
        var instance = (await fixture.Shop.WaitForHealthyInstancesAsync("analytics", 2, TimeSpan.FromSeconds(30))).First();
        var replay = await commands.ExecuteCommandAsync(instance, "replay-events", Ct);
        Assert.True(replay.Success, replay.Message);
        await UntilConsumedAsync(async () => await GroupDrainedAsync(valkey.GetDatabase()), "the replayed entries consumed");
        Assert.Equal(5, await CountAsync(analytics, "most-viewed", ViewedProduct));

        await Eventually.UntilAsync(async () =>
        {
            var trending = await gateway.GetFromJsonAsync<JsonElement>("/api/catalog/products/trending?window=24h&top=50", Ct);
            return !trending.GetProperty("degraded").GetBoolean() &&
                trending.GetProperty("products").EnumerateArray().Any(p => p.GetProperty("productId").GetInt64() == ViewedProduct && p.GetProperty("name").GetString() == $"Product {ViewedProduct}");
        }, TimeSpan.FromSeconds(90), "the product among the catalog's trending products", poll: TimeSpan.FromSeconds(2), cancellationToken: Ct);
    }

    [Fact]
    public async Task A_placed_order_counts_once_in_best_selling_and_the_order_series_and_raises_unique_visitors()
    {
        using var analytics = App.CreateHttpClient("analytics");
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        await UntilConsumedAsync(async () => await GroupDrainedAsync(valkey.GetDatabase()), "earlier events consumed");
        var ordersBefore = await SumAsync(analytics, "orders");
        var unitsBefore = await SumAsync(analytics, "units");
        var visitorsBefore = await VisitorsAsync(analytics);

        await PlaceOrderAsync(SoldProduct, quantity: 3);

        await UntilConsumedAsync(async () => await CountAsync(analytics, "best-selling", SoldProduct) == 3, "three units in the best-selling board");
        await UntilConsumedAsync(async () => await GroupDrainedAsync(valkey.GetDatabase()), "the order consumed");
        Assert.Equal(ordersBefore + 1, await SumAsync(analytics, "orders"));
        Assert.Equal(unitsBefore + 3, await SumAsync(analytics, "units"));
        Assert.True(await VisitorsAsync(analytics) > visitorsBefore, "the buyer is a new visitor (the gateway's view of its address)");
    }

    [Fact]
    public async Task Rolled_up_hours_come_back_from_postgres_after_valkey_lost_a_bucket()
    {
        using var analytics = App.CreateHttpClient("analytics");
        using var operatorClient = await fixture.Shop.ClientAsAsync("analytics", "operator", Ct);
        var at = DateTimeOffset.UtcNow;
        await PlaceOrderAsync(RebuiltProduct, quantity: 4);
        await UntilConsumedAsync(async () => await CountAsync(analytics, "best-selling", RebuiltProduct) == 4, "the order applied");
        using var rollup = await operatorClient.PostAsync("/admin/rollup", null, Ct);
        Assert.Equal(HttpStatusCode.OK, rollup.StatusCode);

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        var bucket = AnalyticsKeys.BucketOf("sold", at.UtcDateTime, RebuiltProduct);
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
    [InlineData("{\"type\":\"product.viewed\",\"productId\":987654}")] // not in the catalog
    [InlineData("{\"type\":\"cart.item_added\",\"productId\":1,\"quantity\":1}")] // only the cart says that
    [InlineData("{\"type\":\"order.placed\",\"id\":\"order-x\",\"lines\":[{\"productId\":4242,\"quantity\":99}]}")] // only checkout says that
    [InlineData("{\"type\":\"product.viewed\",\"productId\":1,\"timestamp\":\"2026-01-01T00:00:00Z\"}")] // the server's clock decides
    [InlineData("{\"type\":\"product.viewed\",\"productId\":1,\"id\":\"order-1\"}")] // the server names events
    [InlineData("{\"type\":\"product.viewed\",\"productId\":1,\"visitorId\":\"someone-else\"}")] // the gateway knows the visitor
    [InlineData("{ not json")]
    public async Task A_bad_or_forged_event_is_a_400_problem_and_reaches_no_stream(string body)
    {
        using var analytics = App.CreateHttpClient("analytics");
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        var before = await valkey.GetDatabase().StreamLengthAsync(EventStream.Key);

        using var response = await analytics.PostAsync("/api/analytics/events", new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(before, await valkey.GetDatabase().StreamLengthAsync(EventStream.Key));
    }

    // Without the gateway there is no visitor: a caller that reaches the analytics service directly (with no context,
    // or one signed with another key) cannot add views to most-viewed and trending.
    [Fact]
    public async Task A_view_posted_straight_to_the_service_without_the_gateway_s_client_context_is_a_403_and_reaches_no_stream()
    {
        using var analytics = App.CreateHttpClient("analytics");
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        var before = await valkey.GetDatabase().StreamLengthAsync(EventStream.Key);
        var forged = Forgery.Token(fixture.Shop.SigningKey + "-not-it", "shopreference-client-context", ("visitor", "forged"));

        foreach (var context in new string?[] { null, forged })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/analytics/events")
            {
                Content = new StringContent($"{{\"type\":\"product.viewed\",\"productId\":{PostedViewProduct}}}", System.Text.Encoding.UTF8, "application/json"),
            };
            if (context is not null) request.Headers.Add("X-Shop-Client", context);
            using var response = await analytics.SendAsync(request, Ct);

            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
        Assert.Equal(before, await valkey.GetDatabase().StreamLengthAsync(EventStream.Key));
    }

    [Fact]
    public async Task A_view_posted_through_the_gateway_gets_a_server_id_and_counts()
    {
        using var analytics = App.CreateHttpClient("analytics");
        using var gateway = fixture.Shop.GatewayAsNewClient(out _);

        using var posted = await gateway.PostAsJsonAsync("/api/analytics/events", new { type = "product.viewed", productId = PostedViewProduct }, Ct);

        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var id = (await posted.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString();
        Assert.Matches("^[0-9a-f]{32}$", id);
        await UntilConsumedAsync(async () => await CountAsync(analytics, "most-viewed", PostedViewProduct) == 1, "the posted view in the board");
    }

    [Fact]
    public async Task An_oversized_event_is_a_413_and_bad_query_values_are_400s()
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

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, oversized.StatusCode);
        Assert.Equal("application/problem+json", oversized.Content.Headers.ContentType?.MediaType);
        Assert.All(new[] { board, window, top, day, minutes }, r => Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode));
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

    // The whole retained series (6 h): a window that slid between the two reads could not change the difference.
    private async Task<long> SumAsync(HttpClient analytics, string metric) =>
        (await analytics.GetFromJsonAsync<JsonElement>($"/api/analytics/timeseries/{metric}?minutes=360", Ct))
            .GetProperty("points").EnumerateArray().Sum(p => p.GetProperty("value").GetInt64());

    private async Task<long> VisitorsAsync(HttpClient analytics) =>
        (await analytics.GetFromJsonAsync<JsonElement>($"/api/analytics/uniques?day={DateTime.UtcNow:yyyy-MM-dd}", Ct)).GetProperty("visitors").GetInt64();

    // A shopper of its own (its own address at the gateway) puts the product in a cart and checks out.
    private async Task PlaceOrderAsync(long productId, int quantity)
    {
        using var gateway = fixture.Shop.GatewayAsNewClient(out _);
        using var added = await gateway.SendAsync(HttpMethod.Post, "/api/cart/items", null, new { productId, quantity }, Ct);
        Assert.Equal(HttpStatusCode.OK, added.StatusCode);
        using var placed = await gateway.SendAsync(HttpMethod.Post, "/api/cart/checkout", CartHttp.SetCookie(added),
            new { email = "buyer@example.com" }, Ct, idempotencyKey: Guid.NewGuid().ToString("N"));
        Assert.Equal(HttpStatusCode.OK, placed.StatusCode);
    }

    // Waits on what the consumer does in the background. A timeout says where the consumer group stood and what each
    // analytics replica was doing, since a consumer that fell behind, stalled or ended looks the same from here.
    private async Task UntilConsumedAsync(Func<Task<bool>> condition, string what)
    {
        try
        {
            await Eventually.UntilAsync(condition, TimeSpan.FromSeconds(30), what, cancellationToken: Ct);
        }
        catch (TimeoutException timeout)
        {
            await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
            var database = valkey.GetDatabase();
            var group = (await database.StreamGroupInfoAsync(EventStream.Key)).Single(g => g.Name == EventStream.ConsumerGroup);
            var members = await database.StreamConsumerInfoAsync(EventStream.Key, EventStream.ConsumerGroup);
            throw new TimeoutException($"{timeout.Message}\nthe group: lag {group.Lag?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"}, " +
                $"{group.PendingMessageCount} pending, last delivered {group.LastDeliveredId}, stream length {await database.StreamLengthAsync(EventStream.Key)}; members: " +
                string.Join(", ", members.Select(m => $"{m.Name} ({m.PendingMessageCount} pending, idle {m.IdleTimeInMilliseconds} ms)")) +
                $"\n{await fixture.Shop.InstancesReportAsync("analytics")}", timeout);
        }
    }

    private static async Task<bool> GroupDrainedAsync(IDatabase database)
    {
        var group = (await database.StreamGroupInfoAsync(EventStream.Key)).Single(g => g.Name == EventStream.ConsumerGroup);
        return group.Lag == 0 && group.PendingMessageCount == 0;
    }
}
