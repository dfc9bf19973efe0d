using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Both catalog replicas keep products in process memory (X-Cache: hit-local). A change made anywhere — through the
/// API on either replica, or in PostgreSQL behind the API — must reach both. The test app keeps near-cache copies for
/// longer than any wait here (<see cref="ShopApp.NearCacheTimeToLive"/>), so only an invalidation can explain a new value.
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class NearCacheApiTests(ShopAppFixture fixture)
{
    private static readonly TimeSpan Propagation = TimeSpan.FromSeconds(15);
    private DistributedApplication App => fixture.Shop.App;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_change_behind_the_api_reaches_the_near_cache_of_every_replica_even_when_it_forgets_the_version()
    {
        var replicas = await ReplicasAsync();
        var before = await WarmAsync(replicas, 707);

        // As someone in psql would write it: the table's trigger moves the version, so the change is a new version everywhere.
        await ExecuteAsync("update products set name = 'Renamed in PostgreSQL' where id = 707");

        await UntilEveryReplicaAsync(replicas, 707, read => read.Name == "Renamed in PostgreSQL" && read.ETag != before.ETag);
    }

    [Fact]
    public async Task A_write_through_one_replica_reaches_the_near_cache_of_the_other_and_the_writer_serves_it_at_once()
    {
        var replicas = await ReplicasAsync();
        var before = await WarmAsync(replicas, 708);
        using var writer = new HttpClient { BaseAddress = replicas[0].BaseAddress };
        writer.DefaultRequestHeaders.Authorization = new("Bearer", await fixture.Shop.TokenAsync("catalog-admin", Ct));

        using var put = await writer.SendAsync(new HttpRequestMessage(HttpMethod.Put, "/api/catalog/products/708")
        {
            Headers = { { "If-Match", before.ETag } },
            Content = JsonContent.Create(new { name = "Renamed through replica one", description = "", category = "category-1", price = 3.5m, stock = 9 }),
        }, Ct);
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        var own = await ReadAsync(replicas[0], 708); // the writer dropped its copy before it answered
        Assert.Equal("Renamed through replica one", own.Name);
        await UntilEveryReplicaAsync(replicas, 708, read => read.ETag == put.Headers.ETag!.Tag);
    }

    [Fact]
    public async Task A_product_deleted_in_postgresql_is_gone_from_every_replica()
    {
        var replicas = await ReplicasAsync();
        await WarmAsync(replicas, 709);

        await ExecuteAsync("delete from products where id = 709");

        await UntilEveryReplicaAsync(replicas, 709, read => read.Status == HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task An_operator_eviction_empties_the_near_cache_of_every_replica()
    {
        var replicas = await ReplicasAsync();
        await WarmAsync(replicas, 710);
        using var operatorClient = await fixture.Shop.ClientAsAsync("catalog", "operator", Ct);

        using var evicted = await operatorClient.DeleteAsync("/admin/cache/products/710", Ct);
        Assert.Equal(HttpStatusCode.NoContent, evicted.StatusCode);

        // Dropped everywhere: exactly one replica reloads from PostgreSQL (the other waits for it or reads its fill).
        await UntilEveryReplicaAsync(replicas, 710, read => read.Cache is not "hit-local");
    }

    private sealed record Read(HttpStatusCode Status, string Cache, string? ETag, string? Name);

    private async Task<HttpClient[]> ReplicasAsync() =>
        [.. (await fixture.Shop.ReplicaAddressesAsync("catalog", 2, TimeSpan.FromSeconds(30))).Select(address => new HttpClient { BaseAddress = address })];

    /// <summary>Reads the product on each replica until each serves it from its own memory; the copy they hold.</summary>
    private async Task<Read> WarmAsync(HttpClient[] replicas, long id)
    {
        Read? held = null;
        foreach (var replica in replicas)
        {
            await Eventually.UntilAsync(async () => (held = await ReadAsync(replica, id)).Cache == "hit-local",
                Propagation, $"replica {replica.BaseAddress} never kept product {id} in its near cache", cancellationToken: Ct);
        }
        return held!;
    }

    private async Task UntilEveryReplicaAsync(HttpClient[] replicas, long id, Func<Read, bool> done)
    {
        foreach (var replica in replicas)
        {
            await Eventually.UntilAsync(async () => done(await ReadAsync(replica, id)),
                Propagation, $"replica {replica.BaseAddress} still serves its old copy of product {id}", cancellationToken: Ct);
        }
    }

    private async Task<Read> ReadAsync(HttpClient replica, long id)
    {
        using var response = await replica.GetAsync($"/api/catalog/products/{id}", Ct);
        var cache = response.Headers.TryGetValues("X-Cache", out var values) ? values.Single() : "";
        var name = response.StatusCode == HttpStatusCode.OK
            ? (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("name").GetString()
            : null;
        return new Read(response.StatusCode, cache, response.Headers.ETag?.Tag, name);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(await App.GetConnectionStringAsync("catalogdb", Ct));
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Ct);
    }
}
