using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.Data;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.Caching;
using ShopReference.CartSession.Carts;
using ShopReference.Valkey.RateLimiting;
using ShopReference.Valkey.Resilience;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

/// <summary>
/// Valkey at its memory limit with <c>noeviction</c> (docs/security.md): writes that would add state are refused with
/// OOM, which every service treats as "unavailable" (503, or the catalog's read from PostgreSQL), and nothing already
/// stored — carts, checkout claims, limiter counts — is evicted to make room. A script whose first write cannot grow
/// memory runs whole (the server never half-runs a script): a cart change renews the session's expiry first, so an
/// existing cart still changes, within its bound of 50 lines.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class MemoryLimitTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task At_the_memory_limit_new_state_is_refused_as_unavailable_existing_carts_still_change_and_nothing_is_evicted()
    {
        await using var valkey = await TestValkeyServer.StartAsync(settings: ["maxmemory 4mb", "maxmemory-policy noeviction"]);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(valkey.ConnectionString + ",allowAdmin=true");
        var database = connection.GetDatabase();
        var limits = new CartLimits();
        var carts = new CartStore(connection, limits);
        var claims = new CheckoutClaims(connection, limits);
        var sessions = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            var session = await carts.CreateSessionAsync();
            await carts.AddAsync(session, 1 + i, 2);
            await carts.AddAsync(session, 1000 + i, 1);
            sessions.Add(session);
        }
        Assert.Equal(ClaimState.Claimed, (await claims.ClaimAsync(sessions[0], "key-1", "f00d", "token-1")).State);
        var limiter = new FixedWindowLimiter(database, "memory-test", new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = 100, Window = TimeSpan.FromMinutes(5) });
        for (var i = 0; i < 10; i++)
        {
            using var lease = await limiter.AcquireAsync(1, Ct);
            Assert.True(lease.IsAcquired);
        }
        var before = await SnapshotAsync(database, sessions, limiter.Key);

        // Fill to the brim: large values first, then ever smaller ones, so not even a small write still fits.
        var filler = 0;
        RedisServerException? full = null;
        foreach (var size in new[] { 16 * 1024, 1024, 64, 1 })
        {
            full = await Assert.ThrowsAsync<RedisServerException>(async () =>
            {
                var junk = new string('x', size);
                while (filler < 1_000_000)
                {
                    await database.StringSetAsync($"test:filler:{filler++}", junk);
                }
            });
        }
        Assert.StartsWith("OOM", full!.Message);
        // Memory is accounted to the byte (a freed request buffer, a client's output), so right at the brim a small
        // write can slip through; hold the server clearly over its limit while probing it.
        var server = connection.GetServers().Single();
        var used = long.Parse(((await server.InfoAsync("memory")).SelectMany(g => g).Single(p => p.Key == "used_memory")).Value, System.Globalization.CultureInfo.InvariantCulture);
        await server.ConfigSetAsync("maxmemory", used - 256 * 1024);

        var newSession = await Assert.ThrowsAsync<RedisServerException>(carts.CreateSessionAsync);
        var claimWrite = await Assert.ThrowsAsync<RedisServerException>(() => claims.ClaimAsync(sessions[2], "key-2", "f00d", "token-2"));
        var limit = await Assert.ThrowsAsync<RedisServerException>(async () => await limiter.AcquireAsync(1, Ct));
        Assert.All(new[] { newSession, claimWrite, limit }, refused => Assert.True(ValkeyFailures.IsUnavailable(refused), refused.Message));
        Assert.Equal(before, await SnapshotAsync(database, sessions, limiter.Key));

        var change = await carts.AddAsync(sessions[1], 2, 1);
        Assert.Equal((CartChange.Applied, 3), (change.Change, change.Quantity));

        // The catalog's documented degrade: a miss that cannot be cached is read from PostgreSQL, and counted.
        await using var dataSource = NpgsqlDataSource.Create(await fixture.Postgres.CreateDatabaseAsync("memorylimit"));
        await new CatalogInitializer(dataSource, NullLogger<CatalogInitializer>.Instance).InitializeAsync(Ct);
        await using var flights = new SingleFlightCache(connection, new SingleFlightOptions { Channel = "test:memory:" + Guid.NewGuid().ToString("N") });
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        await using var near = new NearCache(flights, connection, new NearCacheOptions());
        var metrics = new CatalogMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), near);
        var products = new ProductCache(near, new CatalogDatabase(dataSource), metrics, NullLogger<ProductCache>.Instance);
        var (product, _) = await products.GetAsync(12, Ct);
        Assert.Equal("SKU-000012", product?.Sku);
        Assert.Equal(1, metrics.DegradedCount);
    }

    // Every cart's lines, the claim and the limiter's count, read without changing them.
    private static async Task<string> SnapshotAsync(IDatabase database, IEnumerable<string> sessions, RedisKey limiterKey)
    {
        var parts = new List<string>();
        foreach (var session in sessions)
        {
            var lines = await database.HashGetAllAsync(CartStore.Key(session));
            parts.Add(string.Join(",", lines.OrderBy(l => (string?)l.Name, StringComparer.Ordinal).Select(l => $"{l.Name}={l.Value}")));
        }
        parts.Add((string?)await database.StringGetAsync(CheckoutClaims.Key(sessions.First(), "key-1")) ?? "no claim");
        parts.Add((string?)await database.StringGetAsync(limiterKey) ?? "no count");
        return string.Join("|", parts);
    }
}
