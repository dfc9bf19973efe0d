using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>The catalog through the gateway. Each test uses its own product ids, so tests do not see each other's writes.</summary>
[Collection(ShopAppCollection.Name)]
public sealed class CatalogApiTests(ShopAppFixture fixture)
{
    private DistributedApplication App => fixture.Shop.App;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_product_is_loaded_once_then_served_from_valkey_with_its_etag()
    {
        using var gateway = App.CreateHttpClient("rate-limit");
        using (var operatorClient = await fixture.Shop.ClientAsAsync("catalog", "operator", Ct))
        using (var evicted = await operatorClient.DeleteAsync("/admin/cache/products/42", Ct)) // cold, whatever ran before
        {
            Assert.Equal(HttpStatusCode.NoContent, evicted.StatusCode);
        }

        using var first = await gateway.GetAsync("/api/catalog/products/42", Ct);
        using var second = await gateway.GetAsync("/api/catalog/products/42", Ct);

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("miss", Header(first, "X-Cache"));
        Assert.Contains(Header(second, "X-Cache"), FromCache); // from Valkey, or from the replica's near cache
        Assert.Equal(second.Headers.ETag?.Tag, first.Headers.ETag?.Tag);
        var product = await second.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("SKU-000042", product.GetProperty("sku").GetString());
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("99999999999999999999999")]
    public async Task A_malformed_id_is_a_400_problem(string id)
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        using var response = await gateway.GetAsync($"/api/catalog/products/{id}", Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task An_unknown_id_is_a_404_that_is_cached_negatively()
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        using var first = await gateway.GetAsync("/api/catalog/products/987654", Ct);
        using var second = await gateway.GetAsync("/api/catalog/products/987654", Ct);

        Assert.Equal(HttpStatusCode.NotFound, first.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, second.StatusCode);
        Assert.Contains(Header(second, "X-Cache"), FromCache);
    }

    [Fact]
    public async Task A_write_goes_through_to_the_cache_and_a_stale_etag_is_refused()
    {
        using var gateway = await fixture.Shop.ClientAsAsync("rate-limit", "catalog-admin", Ct);
        using var read = await gateway.GetAsync("/api/catalog/products/101", Ct);
        var etag = read.Headers.ETag!.Tag;

        using var update = await PutAsync(gateway, 101, etag, Update("Renamed 101", 12.5m, 7));
        // The other replica drops its near-cache copy when the write's announcement arrives (milliseconds), not at once.
        using var after = await ReadUntilAsync(gateway, 101, r => r.Headers.ETag?.Tag == update.Headers.ETag?.Tag);
        using var stale = await PutAsync(gateway, 101, etag, Update("Lost update", 1m, 1));

        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
        Assert.NotEqual(etag, update.Headers.ETag!.Tag);
        Assert.Contains(Header(after, "X-Cache"), FromCache); // written through: no reload from PostgreSQL
        Assert.Equal("Renamed 101", (await after.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("name").GetString());
        Assert.Equal(HttpStatusCode.PreconditionFailed, stale.StatusCode);
    }

    [Fact]
    public async Task Concurrent_writes_with_the_same_version_let_exactly_one_win_and_the_cache_equals_the_database()
    {
        using var gateway = await fixture.Shop.ClientAsAsync("rate-limit", "catalog-admin", Ct);
        using var read = await gateway.GetAsync("/api/catalog/products/202", Ct);
        var etag = read.Headers.ETag!.Tag;

        var writes = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => PutAsync(gateway, 202, etag, Update($"Writer {i}", 10m + i, i))));

        Assert.Equal(1, writes.Count(w => w.StatusCode == HttpStatusCode.OK));
        Assert.Equal(7, writes.Count(w => w.StatusCode == HttpStatusCode.PreconditionFailed));
        using var cached = await gateway.GetAsync("/api/catalog/products/202", Ct);
        var cachedProduct = await cached.Content.ReadFromJsonAsync<JsonElement>(Ct);
        var (name, version) = await DatabaseRowAsync(202);
        Assert.Equal(name, cachedProduct.GetProperty("name").GetString());
        Assert.Equal(version, cachedProduct.GetProperty("version").GetInt32());
        foreach (var write in writes) write.Dispose();
    }

    [Fact]
    public async Task Bad_input_is_a_400_problem_and_changes_nothing()
    {
        using var gateway = await fixture.Shop.ClientAsAsync("rate-limit", "catalog-admin", Ct);
        using var read = await gateway.GetAsync("/api/catalog/products/303", Ct);
        var etag = read.Headers.ETag!.Tag;
        var before = await DatabaseRowAsync(303);

        using var negativePrice = await PutAsync(gateway, 303, etag, Update("Fine name", -1m, 1));
        using var longName = await PutAsync(gateway, 303, etag, Update(new string('n', 201), 1m, 1));
        using var negativeStock = await PutAsync(gateway, 303, etag, Update("Fine name", 1m, -1));
        using var malformed = await gateway.SendAsync(new HttpRequestMessage(HttpMethod.Put, "/api/catalog/products/303")
        {
            Headers = { { "If-Match", etag } },
            Content = new StringContent("{ not json", System.Text.Encoding.UTF8, "application/json"),
        }, Ct);
        using var noIfMatch = await gateway.PutAsJsonAsync("/api/catalog/products/303", Update("Fine name", 1m, 1), Ct);

        Assert.All(new[] { negativePrice, longName, negativeStock, malformed }, r =>
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        });
        Assert.Equal((HttpStatusCode)428, noIfMatch.StatusCode);
        Assert.Equal(before, await DatabaseRowAsync(303));
    }

    [Fact]
    public async Task A_listing_is_output_cached_and_evicted_by_a_write()
    {
        // Anonymous reads: a request with credentials is never served from the shared output cache.
        using var gateway = App.CreateHttpClient("rate-limit");
        using var admin = await fixture.Shop.ClientAsAsync("rate-limit", "catalog-admin", Ct);
        const string page = "/api/catalog/products?category=category-5&page=1&pageSize=3";
        var firstItem = (await gateway.GetFromJsonAsync<JsonElement>(page, Ct)).GetProperty("items")[0];
        var id = firstItem.GetProperty("id").GetInt64();
        // The output cache stores a page after answering, in Valkey, shared by the replicas; the next read may reach the
        // other replica a moment before the store is done, so it is asked again until the page comes from the cache.
        await Eventually.UntilAsync(async () =>
        {
            using var cachedPage = await gateway.GetAsync(page, Ct);
            return cachedPage.Headers.Age is not null;
        }, TimeSpan.FromSeconds(5), "a listing read again never came from the output cache", TimeSpan.FromMilliseconds(100), Ct);

        using var product = await gateway.GetAsync($"/api/catalog/products/{id}", Ct);
        using var update = await PutAsync(admin, id, product.Headers.ETag!.Tag, Update($"Listed {id} renamed", 9.99m, 3) with { Category = "category-5" });
        Assert.Equal(HttpStatusCode.OK, update.StatusCode);

        var refreshed = (await gateway.GetFromJsonAsync<JsonElement>(page, Ct)).GetProperty("items")[0];
        Assert.Equal($"Listed {id} renamed", refreshed.GetProperty("name").GetString());
    }

    private static ProductBody Update(string name, decimal price, int stock) => new(name, "Updated by a test", "category-1", price, stock);

    private sealed record ProductBody(string Name, string Description, string Category, decimal Price, int Stock);

    private Task<HttpResponseMessage> PutAsync(HttpClient gateway, long id, string etag, ProductBody body) =>
        gateway.SendAsync(new HttpRequestMessage(HttpMethod.Put, $"/api/catalog/products/{id}")
        {
            Headers = { { "If-Match", etag } },
            Content = JsonContent.Create(body),
        }, Ct);

    private async Task<(string Name, int Version)> DatabaseRowAsync(long id)
    {
        await using var connection = new NpgsqlConnection(await App.GetConnectionStringAsync("catalogdb", Ct));
        await connection.OpenAsync(Ct);
        await using var select = new NpgsqlCommand("select name, version from products where id = $1", connection) { Parameters = { new() { Value = id } } };
        await using var reader = await select.ExecuteReaderAsync(Ct);
        await reader.ReadAsync(Ct);
        return (reader.GetString(0), reader.GetInt32(1));
    }

    /// <summary>The X-Cache values of a read served without PostgreSQL.</summary>
    private static readonly string[] FromCache = ["hit", "hit-local"];

    /// <summary>Reads a product until <paramref name="done"/> holds (a few seconds at most); the matching response, undisposed.</summary>
    private async Task<HttpResponseMessage> ReadUntilAsync(HttpClient http, long id, Func<HttpResponseMessage, bool> done)
    {
        HttpResponseMessage? last = null;
        await Eventually.UntilAsync(async () =>
        {
            last?.Dispose();
            last = await http.GetAsync($"/api/catalog/products/{id}", Ct);
            return done(last);
        }, TimeSpan.FromSeconds(5), $"product {id} never showed the write", cancellationToken: Ct);
        return last!;
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.Single() : "";
}

/// <summary>The dashboard's stampede command, run as a user would run it.</summary>
[Collection(ShopAppCollection.Name)]
public sealed class CatalogStampedeCommandTests(ShopAppFixture fixture)
{
    [Fact]
    public async Task Expiring_a_hot_key_under_a_100_request_burst_across_two_replicas_loads_the_origin_once_and_a_second_run_does_the_same()
    {
        var commands = fixture.Shop.App.Services.GetRequiredService<ResourceCommandService>();
        // A replicated resource has a command per replica; either replica's command acts on the whole app.
        var replicas = await fixture.Shop.WaitForHealthyInstancesAsync("catalog", 2, TimeSpan.FromSeconds(30));

        // Twice in a row: the second run fits the stampede client's quota as the first did.
        foreach (var run in new[] { 1, 2 })
        {
            var result = await commands.ExecuteCommandAsync(replicas.First(), "stampede", TestContext.Current.CancellationToken);

            Assert.True(result.Success, $"run {run}: {result.Message}");
            // The whole summary in the failure message (Assert.Matches would cut it): it says how the other readers fared.
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(result.Message ?? "", @"\b1 miss\b"), result.Message);
            Assert.False(System.Text.RegularExpressions.Regex.IsMatch(result.Message ?? "", @"\b\d+ [45]\d\d\b"), result.Message);
            // The replicas that answered are named as the dashboard shows them, with their counts: all 100 reads.
            var answered = System.Text.RegularExpressions.Regex.Matches(result.Message![result.Message!.IndexOf("answered by", StringComparison.Ordinal)..], @"(\S+) \((\d+)\)");
            Assert.NotEmpty(answered);
            Assert.All(answered, m => Assert.Contains(m.Groups[1].Value, replicas));
            Assert.Equal(100, answered.Sum(m => int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)));
        }
    }
}
