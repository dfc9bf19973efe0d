using System.Text;
using ShopReference.Bench.Harness;
using ShopReference.CartSession.Carts;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// The same three operations on one Valkey process (baseline) and on a cluster of three primaries with a replica each,
/// started side by side in this run and measured in alternating rounds: a catalog cache hit, a cart add, a rate-limit
/// decision. Then how each operation's commands, keys and memory spread over the cluster's primaries. On two cores a
/// cluster cannot be faster (its six processes share the cores the single one had); what it shows is what the client's
/// slot routing costs and that every pattern's keys land on every shard. Analytics has its own cluster run
/// (<c>analytics</c> with SHOPREF_VALKEY_TOPOLOGY=Cluster).
/// </summary>
public sealed class TopologyScenario : IScenario
{
    private const int Keys = 1_000;
    private const string Single = "1 node";
    private const string Cluster = "3×2 cluster";

    public string Name => "topology";
    public string Description => "catalog hit, cart add and limiter decision on 1 node vs a 3-shard cluster, same run";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var cluster = await TestValkeyCluster.StartAsync();
        // The harness's own Valkey is the single node unless the run asked for a cluster: then start one.
        await using var ownServer = servers.Valkey.Server is null ? await TestValkeyServer.StartAsync() : null;
        var singleServer = servers.Valkey.Server ?? ownServer!;
        await using var single = await ConnectionMultiplexer.ConnectAsync(singleServer.ConnectionString);
        await using var sharded = await cluster.ConnectAsync(",allowAdmin=true"); // INFO per primary for the spread

        var owned = new List<IAsyncDisposable>();
        var report = new StringBuilder();
        foreach (var pattern in Patterns(owned))
        {
            var onSingle = await pattern.PrepareAsync(single);
            var onCluster = await pattern.PrepareAsync(sharded);
            var before = await ShardSpread.SnapshotAsync(sharded);
            var measurements = new List<Measurement>();
            foreach (var concurrency in options.ConcurrencyLevels)
            {
                measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(
                    [($"{pattern.Name} on {Single}", onSingle), ($"{pattern.Name} on {Cluster}", onCluster)],
                    concurrency, options.Warmup, options.Duration));
            }
            report.AppendLine(MarkdownReport.Render(pattern.Name, $"{pattern.Name} on {Single}", measurements));
            report.AppendLine(await before.RenderSinceAsync(sharded, $"Spread of the {pattern.Name.ToLowerInvariant()} runs over the cluster's primaries ({pattern.KeyNote})"));
        }
        foreach (var resource in owned)
        {
            await resource.DisposeAsync();
        }
        return report.ToString();
    }

    /// <summary>One pattern's operation, made ready on a connection: seeded keys and the callable the load runner repeats.</summary>
    private sealed record Pattern(string Name, string KeyNote, Func<IConnectionMultiplexer, Task<Func<ValueTask>>> PrepareAsync);

    /// <param name="owned">Collects what a pattern opens (a cache's subscription), for disposal after the run.</param>
    private static IEnumerable<Pattern> Patterns(List<IAsyncDisposable> owned) =>
    [
        new("Catalog cache hit", $"{Keys:N0} products, a key each, tagged by product id", async multiplexer =>
        {
            var cache = new SingleFlightCache(multiplexer, new SingleFlightOptions { Channel = "bench:topology:filled" });
            owned.Add(cache);
            var entry = new CacheEntryOptions { TimeToLive = TimeSpan.FromHours(1) };
            for (var id = 0; id < Keys; id++)
            {
                await cache.SetAsync(ProductKey(id), new OriginValue(BenchProduct.Make(id).ToJson(), 1), entry);
            }
            return async () =>
            {
                var read = await cache.GetOrLoadAsync(ProductKey(Random.Shared.Next(Keys)), _ => throw new InvalidOperationException("miss"), entry);
                BenchProduct.FromJson(read.Payload);
            };
        }),
        new("Cart add", $"{Keys:N0} carts, a hash each, tagged by session", async multiplexer =>
        {
            var store = new CartStore(multiplexer, new CartLimits { MaxQuantityPerLine = 1_000_000 });
            var sessions = new string[Keys];
            for (var i = 0; i < Keys; i++)
            {
                sessions[i] = await store.CreateSessionAsync();
            }
            return async () => await store.AddAsync(sessions[Random.Shared.Next(Keys)], Random.Shared.Next(1, 11), 1);
        }),
        new("Limiter decision", $"{Keys:N0} clients, a key each (sliding-window counter, the gateway's default)", multiplexer =>
        {
            var run = Guid.NewGuid().ToString("N")[..8];
            var limiters = Enumerable.Range(0, Keys).Select(i => ValkeyRateLimiters.Create(RateLimitAlgorithm.SlidingWindowCounter,
                multiplexer.GetDatabase(), $"bench-topology-{run}-{i}", new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = 1_000_000, Window = TimeSpan.FromHours(1) })).ToArray();
            return Task.FromResult<Func<ValueTask>>(async () =>
            {
                using var lease = await limiters[Random.Shared.Next(Keys)].AcquireAsync(1);
                if (!lease.IsAcquired) throw new InvalidOperationException("rejected below the limit");
            });
        }),
    ];

    private static string ProductKey(int id) => $"bench:topology:product:{{{id}}}";
}
