using System.Net;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// The gateway spreads requests over the replicas one by one (the AppHost's replica directory, read by the gateway's
/// <c>ReplicaFileResolver</c>). The requests below go one after the other on one client connection, and the gateway
/// keeps its own connections: through the orchestrator's proxy alone, which picks a replica per connection, they
/// reached one replica.
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
        // The gateway routes to a replica once the AppHost has listed it (a replica another test restarted comes back
        // on a new port): wait for the directory, not for luck.
        var directory = await fixture.Shop.EnvironmentOfAsync("rate-limit", ShopReference.Contracts.Routing.ReplicaDirectoryFile.EnvironmentVariable);
        await Eventually.UntilAsync(() => ReplicaDirectory.Listed(directory, service) == replicas.Count, TimeSpan.FromSeconds(30),
            $"the replica directory never listed {replicas.Count} replicas of {service}", TimeSpan.FromMilliseconds(200), Ct);
        using var client = fixture.Shop.GatewayAsNewClient(out _);
        var answered = new Dictionary<string, int>(StringComparer.Ordinal);

        // Reads one after the other until every replica has answered, at most 60 (within the anonymous quota of 100).
        // Which replica answers is the balancer's choice (power of two choices prefers the less busy one, and other
        // tests load the replicas unevenly), so the promise is reach, not an even split. Through the orchestrator's
        // proxy alone all reached one replica.
        for (var i = 0; i < 60 && answered.Count < replicas.Count; i++)
        {
            using var response = await client.GetAsync(path, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var replica = Assert.Single(response.Headers.GetValues("X-Replica"));
            answered[replica] = answered.GetValueOrDefault(replica) + 1;
        }

        Assert.True(answered.Count == replicas.Count,
            $"{answered.Values.Sum()} requests were answered by {string.Join(", ", answered.Select(a => $"{a.Key} x{a.Value}"))}");
        // The names are the replicas' names in the dashboard.
        Assert.Equal(replicas.Order(), answered.Keys.Order());
    }
}
