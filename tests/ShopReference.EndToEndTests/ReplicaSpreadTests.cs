using System.Net;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// The gateway spreads requests over the replicas one by one. The requests below go one after the other on one pooled
/// connection: through the orchestrator's proxy alone, which picks a replica per connection, they would all reach one.
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class ReplicaSpreadTests(ShopAppFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("catalog", "/api/catalog/products/1")]
    [InlineData("cart-session", "/api/cart")]
    [InlineData("analytics", "/api/analytics/leaderboards/most-viewed?window=1h")]
    public async Task Requests_on_one_connection_through_the_gateway_reach_every_replica_and_name_it(string service, string path)
    {
        var replicas = await fixture.Shop.WaitForHealthyInstancesAsync(service, 2, TimeSpan.FromSeconds(60));
        using var client = fixture.Shop.GatewayAsNewClient(out _);
        var answered = new Dictionary<string, int>(StringComparer.Ordinal);

        // A replica started or restarted by another test is routed to once it has announced itself (within seconds).
        await Eventually.UntilAsync(async () =>
        {
            answered.Clear();
            for (var i = 0; i < 12; i++)
            {
                using var response = await client.GetAsync(path, Ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var replica = Assert.Single(response.Headers.GetValues("X-Replica"));
                answered[replica] = answered.GetValueOrDefault(replica) + 1;
            }
            return answered.Count == replicas.Count && answered.Values.All(n => n >= 3);
        }, TimeSpan.FromSeconds(30), $"12 requests were answered by {string.Join(", ", answered.Select(a => $"{a.Key} x{a.Value}"))}", TimeSpan.FromSeconds(1), Ct);

        // The names are the replicas' names in the dashboard.
        Assert.Equal(replicas.Order(), answered.Keys.Order());
    }
}
