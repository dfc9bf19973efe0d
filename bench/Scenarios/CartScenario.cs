using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Logging.Abstractions;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using ShopReference.CartSession.Carts;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// "Add one item to a cart" two ways on the same Valkey: ASP.NET Core's session (what its middleware does per request:
/// load the blob through <c>IDistributedCache</c>, change it, commit it whole) as the baseline, against
/// <see cref="CartStore"/> (one atomic Lua step on a hash). Then bytes per session (<c>MEMORY USAGE</c>) and updates
/// lost when 200 adds hit one session at once.
/// </summary>
public sealed class CartScenario : IScenario
{
    private const string Baseline = "ASP.NET Session (blob via IDistributedCache)";
    private const string Ours = "CartStore (hash + one Lua step)";
    private const int Sessions = 1_000;

    public string Name => "cart";
    public string Description => "cart add: ASP.NET Core session blob vs CartStore hash; bytes per session; lost updates";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
        var limits = new CartLimits { MaxQuantityPerLine = 1_000_000 };
        var store = new CartStore(multiplexer, limits);
        using var cache = new RedisCache(new RedisCacheOptions
        {
            InstanceName = "bench:dcache:",
            ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer),
        });
        var blob = new BlobCart(cache, limits.IdleTimeout);

        var ourSessions = new string[Sessions];
        for (var i = 0; i < Sessions; i++)
        {
            ourSessions[i] = await store.CreateSessionAsync();
        }
        var blobSessions = Enumerable.Range(0, Sessions).Select(i => $"bench-blob-{i}").ToArray();

        var measurements = new List<Measurement>();
        foreach (var concurrency in options.ConcurrencyLevels)
        {
            measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(
            [
                (Baseline, async () => await blob.AddAsync(blobSessions[Random.Shared.Next(Sessions)], Random.Shared.Next(1, 11))),
                (Ours, async () => await store.AddAsync(ourSessions[Random.Shared.Next(Sessions)], Random.Shared.Next(1, 11), 1)),
            ], concurrency, options.Warmup, options.Duration));
        }

        var report = new StringBuilder(MarkdownReport.Render(Description, Baseline, measurements));
        report.AppendLine();
        report.AppendLine("Bytes per session (`MEMORY USAGE`, cart of N lines) and lost updates (200 concurrent adds of one item to one new session):");
        report.AppendLine();
        report.AppendLine("| contender | 1 line | 10 lines | 50 lines | adds kept of 200 | lost |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|");
        var database = multiplexer.GetDatabase();
        foreach (var (name, add, key) in new (string, Func<string, long, Task>, Func<string, RedisKey>)[]
        {
            (Baseline, (s, p) => blob.AddAsync(s, p), s => "bench:dcache:" + s),
            (Ours, async (s, p) => await store.AddAsync(s, p, 1), s => CartStore.Key(s)),
        })
        {
            var bytes = new List<long>();
            foreach (var lines in new[] { 1, 10, 50 })
            {
                var session = name == Ours ? await store.CreateSessionAsync() : $"bench-size-{lines}";
                for (var p = 1; p <= lines; p++)
                {
                    await add(session, 1000 + p);
                }
                bytes.Add((long)await database.ExecuteAsync("MEMORY", "USAGE", key(session), "SAMPLES", "0"));
            }
            var raced = name == Ours ? await store.CreateSessionAsync() : "bench-race";
            using var start = new SemaphoreSlim(0);
            var adds = Enumerable.Range(0, 200).Select(async _ => { await start.WaitAsync(); await add(raced, 7); }).ToArray();
            start.Release(200);
            await Task.WhenAll(adds);
            var kept = name == Ours ? (await store.GetAsync(raced))![7] : await blob.QuantityAsync(raced, 7);
            report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {bytes[0]:N0} | {bytes[1]:N0} | {bytes[2]:N0} | {kept} | {200 - kept} |");
        }
        return report.ToString();
    }

    /// <summary>A cart the way ASP.NET Core's session middleware keeps state: one blob per session, written back whole.</summary>
    private sealed class BlobCart(IDistributedCache cache, TimeSpan idleTimeout)
    {
        public async Task AddAsync(string sessionKey, long productId)
        {
            var session = Open(sessionKey);
            await session.LoadAsync();
            var lines = Read(session);
            lines[productId] = lines.GetValueOrDefault(productId) + 1;
            session.Set("cart", JsonSerializer.SerializeToUtf8Bytes(lines));
            await session.CommitAsync();
        }

        public async Task<int> QuantityAsync(string sessionKey, long productId)
        {
            var session = Open(sessionKey);
            await session.LoadAsync();
            return Read(session).GetValueOrDefault(productId);
        }

        private DistributedSession Open(string sessionKey) =>
            new(cache, sessionKey, idleTimeout, TimeSpan.FromSeconds(5), () => true, NullLoggerFactory.Instance, isNewSessionKey: false);

        private static Dictionary<long, int> Read(DistributedSession session) =>
            session.TryGetValue("cart", out var bytes) ? JsonSerializer.Deserialize<Dictionary<long, int>>(bytes)! : [];
    }
}
