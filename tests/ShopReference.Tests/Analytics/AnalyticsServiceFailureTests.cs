using System.Net;
using System.Net.Http.Json;
using ShopReference.Analytics.Apis;
using ShopReference.Analytics.Extensions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ShopReference.RateLimit.Auth;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;

namespace ShopReference.Tests.Analytics;

/// <summary>The analytics service, hosted in process, with Valkey stopped under it: 503s with Retry-After, then recovery.</summary>
[Collection(ServersCollection.Name)]
public sealed class AnalyticsServiceFailureTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Without_valkey_reads_and_posted_events_are_503s_and_the_service_recovers_by_itself()
    {
        // A real catalog beside it: the event route accepts only products the catalog holds.
        await using var catalog = await InProcessService.CatalogAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:catalogdb"] = await fixture.Postgres.CreateDatabaseAsync("analyticsfailurecatalog"),
        });
        await using var valkey = await TestValkeyServer.StartAsync(); // its own server: this test stops it
        var signingKey = Secrets.NewPassword(64);
        await using var service = await InProcessService.AnalyticsAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey.FastFailConnectionString,
            ["ConnectionStrings:analyticsdb"] = await fixture.Postgres.CreateDatabaseAsync("analyticsfailure"),
            ["services:catalog:http:0"] = catalog.Address.ToString(),
            ["Auth:SigningKey"] = signingKey,
        });
        using var http = service.Client();
        // A view is a visitor's only with the client context the gateway signs: the gateway's own issuer makes a fresh
        // one per request here (a context lives two minutes, which a slow run of this test could outlast).
        var issuer = new TokenIssuer(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Auth:SigningKey"] = signingKey }).Build());
        async Task<HttpResponseMessage> PostViewAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/analytics/events") { Content = JsonContent.Create(new { type = "product.viewed", productId = 3 }) };
            request.Headers.Add(ShopAuthentication.ClientContextHeader, issuer.ClientContext("visitor-under-test", isHttps: false));
            return await http.SendAsync(request, Ct);
        }
        await Eventually.UntilAsync(async () =>
        {
            using var health = await catalog.Client().GetAsync("/health", Ct);
            return health.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(60), "the catalog seeded and ready", cancellationToken: Ct);
        using (var up = await PostViewAsync())
        {
            Assert.Equal(HttpStatusCode.Accepted, up.StatusCode);
        }

        await valkey.StopAsync();
        using var board = await http.GetAsync("/api/analytics/leaderboards/most-viewed?window=1h", Ct);
        using var series = await http.GetAsync("/api/analytics/timeseries/views", Ct);
        await Eventually.UntilAsync(async () =>
        {
            using var posted = await PostViewAsync(); // dropped at once once the client knows
            return posted.StatusCode == HttpStatusCode.ServiceUnavailable && posted.Headers.RetryAfter is not null;
        }, TimeSpan.FromSeconds(20), "posting refused with 503 while Valkey is down", cancellationToken: Ct);

        foreach (var response in new[] { board, series })
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.NotNull(response.Headers.RetryAfter);
        }

        await valkey.RestartAsync();
        await Eventually.UntilAsync(async () =>
        {
            using var again = await PostViewAsync();
            return again.StatusCode == HttpStatusCode.Accepted;
        }, TimeSpan.FromSeconds(30), "events accepted again after Valkey returned", cancellationToken: Ct);
    }
}
