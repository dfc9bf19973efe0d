using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

[Collection(ShopAppCollection.Name)]
public sealed class GatewayRateLimitTests(ShopAppFixture fixture)
{
    private DistributedApplication App => fixture.Shop.App;

    [Theory]
    [InlineData("/api/catalog/wiring", HttpStatusCode.OK)]
    [InlineData("/api/analytics/wiring", HttpStatusCode.OK)]
    [InlineData("/api/catalog/no-such-route", HttpStatusCode.NotFound)]
    public async Task Every_response_through_the_gateway_carries_the_ietf_ratelimit_fields(string path, HttpStatusCode expected)
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        using var response = await gateway.GetAsync(path, TestContext.Current.CancellationToken);

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("\"anon-read\";q=100;w=60", Assert.Single(response.Headers.GetValues("RateLimit-Policy")));
        Assert.Matches("^\"anon-read\";r=[0-9]+;t=[0-9]+$", Assert.Single(response.Headers.GetValues("RateLimit")));
    }

    [Fact]
    public async Task The_dashboard_burst_admits_exactly_the_quota_a_second_run_says_when_it_is_back_and_the_next_request_is_a_429_problem_with_retry_after()
    {
        var commands = App.Services.GetRequiredService<ResourceCommandService>();

        var result = await commands.ExecuteCommandAsync("rate-limit", "burst-client", TestContext.Current.CancellationToken);

        Assert.True(result.Success, result.Message);
        Assert.Contains("300 admitted, 50 rejected with 429, 0 other", result.Message);
        // Run again at once: it says the quota is spent and when the burst can run again, instead of "0 admitted".
        var again = await commands.ExecuteCommandAsync("rate-limit", "burst-client", TestContext.Current.CancellationToken);
        Assert.False(again.Success);
        Assert.Matches(@"quota is not full \(0 of 300 left.*run the burst again in \d+ s", again.Message);

        using var gateway = App.CreateHttpClient("rate-limit");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/ratelimit/policies") { Headers = { { "X-Api-Key", fixture.Shop.DemoApiKey } } };
        using var rejected = await gateway.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        Assert.Equal("application/problem+json", rejected.Content.Headers.ContentType?.MediaType);
        var retryAfter = rejected.Headers.RetryAfter?.Delta;
        Assert.NotNull(retryAfter);
        Assert.InRange(retryAfter.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));
        Assert.Equal("\"partner-read\";q=300;w=60", Assert.Single(rejected.Headers.GetValues("RateLimit-Policy")));
        Assert.Matches("^\"partner-read\";r=0;t=[0-9]+$", Assert.Single(rejected.Headers.GetValues("RateLimit")));
        var problem = await rejected.Content.ReadFromJsonAsync<ProblemDetails>(TestContext.Current.CancellationToken);
        Assert.Equal(429, problem!.Status);
    }

    [Theory]
    [InlineData("short", HttpStatusCode.BadRequest)]
    [InlineData("has spaces in it and is long enough", HttpStatusCode.BadRequest)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", HttpStatusCode.BadRequest)]
    [InlineData("unknownbutwellformedkey123", HttpStatusCode.Unauthorized)]
    public async Task A_malformed_or_unknown_api_key_is_refused_with_a_problem_and_never_becomes_a_partition(string key, HttpStatusCode expected)
    {
        using var gateway = App.CreateHttpClient("rate-limit");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/catalog/wiring");
        request.Headers.TryAddWithoutValidation("X-Api-Key", key);

        using var response = await gateway.SendAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Only_the_shoppers_client_speaks_for_simulated_shoppers_each_with_its_own_anonymous_quota()
    {
        var ct = TestContext.Current.CancellationToken;
        using var gateway = App.CreateHttpClient("rate-limit");
        var shoppersKey = fixture.Shop.ShoppersKey;

        using var first = await ReadAsync(gateway, shoppersKey, "64", ct);
        using var again = await ReadAsync(gateway, shoppersKey, "64", ct);
        using var other = await ReadAsync(gateway, shoppersKey, "63", ct);
        using var asPartner = await ReadAsync(gateway, shoppersKey, null, ct);
        // A client without the permission (the stampede command's, not the demo client the burst test counts on).
        using var ignored = await ReadAsync(gateway, fixture.Shop.StampedeKey, "62", ct);
        using var outOfRange = await ReadAsync(gateway, shoppersKey, "65", ct);
        using var notANumber = await ReadAsync(gateway, shoppersKey, "1;2", ct);

        Assert.Equal("\"anon-read\";q=100;w=60", Assert.Single(first.Headers.GetValues("RateLimit-Policy")));
        var remaining = Remaining(again);
        Assert.Equal(Remaining(first) - 1, remaining); // one quota per shopper number …
        Assert.Equal(Remaining(first), Remaining(other)); // … and another for the next number
        Assert.Equal("\"partner-read\";q=300;w=60", Assert.Single(asPartner.Headers.GetValues("RateLimit-Policy"))); // no number: the client itself
        Assert.Equal("\"partner-read\";q=300;w=60", Assert.Single(ignored.Headers.GetValues("RateLimit-Policy"))); // no permission: the header means nothing
        Assert.Equal((HttpStatusCode.BadRequest, HttpStatusCode.BadRequest), (outOfRange.StatusCode, notANumber.StatusCode));
        Assert.Equal("application/problem+json", outOfRange.Content.Headers.ContentType?.MediaType);
    }

    private static async Task<HttpResponseMessage> ReadAsync(HttpClient gateway, string key, string? shopper, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/catalog/wiring");
        request.Headers.TryAddWithoutValidation("X-Api-Key", key);
        if (shopper is not null) request.Headers.TryAddWithoutValidation("X-Shopper", shopper);
        return await gateway.SendAsync(request, ct);
    }

    private static int Remaining(HttpResponseMessage response) => int.Parse(
        System.Text.RegularExpressions.Regex.Match(Assert.Single(response.Headers.GetValues("RateLimit")), ";r=([0-9]+);").Groups[1].Value,
        System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task The_policies_are_listed_in_the_order_they_are_matched()
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        var policies = await gateway.GetFromJsonAsync<JsonElement[]>("/api/ratelimit/policies", TestContext.Current.CancellationToken);

        Assert.Equal(["checkout", "write", "partner-read", "anon-read", "default"], policies!.Select(p => p.GetProperty("name").GetString()));
        Assert.All(policies!, p => Assert.False(p.GetProperty("degraded").GetBoolean()));
    }
}
