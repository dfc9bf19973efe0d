using System.Net;
using System.Text.Json;
using Npgsql;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>Changes made in PostgreSQL without the API reach the cache through logical replication.</summary>
[Collection(ShopAppCollection.Name)]
public sealed class ChangeFeedTests(ShopAppFixture fixture)
{
    private static readonly TimeSpan FeedTimeout = TimeSpan.FromSeconds(30);
    private DistributedApplication App => fixture.Shop.App;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_change_made_directly_in_the_database_reaches_the_cache_without_any_api_call()
    {
        using var gateway = App.CreateHttpClient("rate-limit");
        using var warm = await gateway.GetAsync("/api/catalog/products/404", Ct); // cached at version 1
        Assert.Equal(HttpStatusCode.OK, warm.StatusCode);

        await ExecuteAsync("update products set name = 'Changed behind the API', version = version + 1 where id = 404");

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        await WaitUntilAsync(async () => await CachedNameAsync(valkey, 404) == "Changed behind the API");
        // Each replica's near cache drops its copy when the feed's write is announced: every replica serves the change.
        foreach (var replica in await fixture.Shop.ReplicaAddressesAsync("catalog", 2, FeedTimeout))
        {
            using var direct = new HttpClient { BaseAddress = replica };
            await WaitUntilAsync(async () =>
            {
                using var read = await direct.GetAsync("/api/catalog/products/404", Ct);
                return read.Headers.GetValues("X-Cache").Single() is "hit" or "hit-local" &&
                    (await JsonDocument.ParseAsync(await read.Content.ReadAsStreamAsync(Ct), cancellationToken: Ct)).RootElement.GetProperty("name").GetString() == "Changed behind the API";
            });
        }
    }

    [Fact]
    public async Task A_hundred_changes_in_one_transaction_all_reach_the_cache()
    {
        await ExecuteAsync("update products set stock = stock + 1, version = version + 1 where id between 5001 and 5100");

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        await WaitUntilCacheMatchesAsync(valkey, 5001, 5100);
    }

    [Fact]
    public async Task A_feed_reader_stopped_during_a_hundred_updates_replays_them_all_when_it_returns()
    {
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        await ExecuteAsync("update products set version = version + 1 where id between 6001 and 6100");
        await WaitUntilCacheMatchesAsync(valkey, 6001, 6100);

        // Stop the reader: its replication connection dies (as when the leader replica crashes). The slot keeps the
        // position it last acknowledged, so whichever replica reconnects first must replay everything after it.
        var reader = await ScalarAsync("select active_pid from pg_replication_slots where slot_name = 'catalog_cache' and active");
        Assert.True(await ScalarAsync($"select pg_terminate_backend({reader})") is true, "the reader was not terminated");
        for (var id = 6001; id <= 6100; id++)
        {
            await ExecuteAsync($"update products set stock = stock + 1, version = version + 1 where id = {id}");
        }

        await WaitUntilCacheMatchesAsync(valkey, 6001, 6100);
        var successor = await ScalarAsync("select active_pid from pg_replication_slots where slot_name = 'catalog_cache' and active");
        Assert.NotNull(successor);
        Assert.NotEqual(reader, successor); // a new reader replayed them, not the old one
    }

    private async Task WaitUntilCacheMatchesAsync(ConnectionMultiplexer valkey, long from, long to)
    {
        var expected = await DatabaseVersionsAsync(from, to);
        await WaitUntilAsync(async () =>
        {
            foreach (var (id, version) in expected)
            {
                if (await CachedAsync(valkey, id) is not { } cached || cached.Version != version) return false;
            }
            return true;
        });
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(await App.GetConnectionStringAsync("catalogdb", Ct));
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync(Ct);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(await App.GetConnectionStringAsync("catalogdb", Ct));
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Ct);
    }

    private async Task<Dictionary<long, long>> DatabaseVersionsAsync(long from, long to)
    {
        await using var connection = new NpgsqlConnection(await App.GetConnectionStringAsync("catalogdb", Ct));
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand("select id, version from products where id between $1 and $2", connection)
        {
            Parameters = { new() { Value = from }, new() { Value = to } },
        };
        var versions = new Dictionary<long, long>();
        await using var reader = await command.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct))
        {
            versions[reader.GetInt64(0)] = reader.GetInt32(1);
        }
        return versions;
    }

    private static async Task<CacheEnvelope.Entry?> CachedAsync(ConnectionMultiplexer valkey, long id)
    {
        var stored = await valkey.GetDatabase().StringGetAsync($"catalog:product:{{{id}}}");
        return !stored.IsNull && CacheEnvelope.TryDecode((ReadOnlyMemory<byte>)stored, out var entry) ? entry : null;
    }

    private static async Task<string?> CachedNameAsync(ConnectionMultiplexer valkey, long id) =>
        await CachedAsync(valkey, id) is { Negative: false } entry
            ? JsonDocument.Parse(entry.Payload).RootElement.GetProperty("name").GetString()
            : null;

    private Task WaitUntilAsync(Func<Task<bool>> condition) =>
        Eventually.UntilAsync(condition, FeedTimeout, "the change never reached the cache", cancellationToken: Ct);
}
