using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Locking.Distributed.Redis;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// A hot key expires under 1,000 concurrent readers spread over two processes (two connections, two cache instances)
/// in front of a 200 ms origin. Counts origin loads and the readers' latency for: no protection, HybridCache,
/// FusionCache with its Redis distributed locker, and SingleFlightCache. After one warm-up round each (not counted),
/// the rounds rotate the contenders' order, so none gains from always running first or last; each round uses a fresh
/// key. A reader's latency runs from the burst's start, not from when its task got a thread, so a reader that waited
/// for the CPU is charged for it.
/// </summary>
public sealed class StampedeScenario : IScenario
{
    private const int Readers = 1_000;
    private const int Rounds = 5;
    private static readonly TimeSpan OriginLatency = TimeSpan.FromMilliseconds(200);

    public string Name => "stampede";
    public string Description => "1,000 readers, 2 processes, 200 ms origin: origin loads and reader latency per library";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        var contenders = new List<Contender>();
        foreach (var (name, create) in Contenders().Where(c => options.Only is null || c.Name.Contains(options.Only, StringComparison.OrdinalIgnoreCase)))
        {
            // Fresh connections per contender: some libraries dispose the multiplexer they were handed.
            var processes = new[] { await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString), await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString) };
            contenders.Add(new Contender(name, processes, [.. processes.Select(create)]));
        }
        foreach (var contender in contenders)
        {
            await RoundAsync(contender, count: false); // warm-up: JIT, scripts loaded, connections settled
        }
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var contender in contenders.Skip(round % contenders.Count).Concat(contenders.Take(round % contenders.Count)))
            {
                await RoundAsync(contender, count: true);
            }
        }

        var report = new StringBuilder();
        report.AppendLine($"### {Description}");
        report.AppendLine();
        report.AppendLine($"| contender | origin loads per cold key (mean of {Rounds}) | reader p50 ms | reader p99 ms | p99 minus origin latency ms |");
        report.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var contender in contenders)
        {
            contender.Latencies.Sort();
            var p50 = contender.Latencies[contender.Latencies.Count / 2];
            var p99 = contender.Latencies[(int)(contender.Latencies.Count * 0.99)];
            report.AppendLine($"| {contender.Name} | {(double)contender.Loads / Rounds:0.0} | {p50:0} | {p99:0} | {p99 - OriginLatency.TotalMilliseconds:0} |");
            foreach (var reader in contender.Readers) await reader.DisposeAsync();
            foreach (var process in contender.Processes) await process.DisposeAsync();
        }
        return report.ToString();
    }

    private sealed record Contender(string Name, ConnectionMultiplexer[] Processes, Reader[] Readers)
    {
        public long Loads;
        public List<double> Latencies { get; } = [];
    }

    private static async Task RoundAsync(Contender contender, bool count)
    {
        var key = $"bench:stampede:{{{Guid.NewGuid():N}}}";
        var loads = 0L;
        var latencies = await BurstAsync(contender.Readers, key, async ct =>
        {
            Interlocked.Increment(ref loads);
            await Task.Delay(OriginLatency, ct); // the origin's latency, the subject of the scenario
            return BenchProduct.Make(42);
        });
        if (count)
        {
            contender.Loads += loads;
            contender.Latencies.AddRange(latencies);
        }
    }

    private static async Task<List<double>> BurstAsync(Reader[] readers, string key, Func<CancellationToken, Task<BenchProduct>> origin)
    {
        using var start = new ManualResetEventSlim();
        var burstStarted = 0L;
        var tasks = Enumerable.Range(0, Readers).Select(i => Task.Run(async () =>
        {
            start.Wait();
            var product = await readers[i % readers.Length].ReadAsync(key, origin);
            if (product.Id != 42) throw new InvalidOperationException("wrong product");
            return Stopwatch.GetElapsedTime(Volatile.Read(ref burstStarted)).TotalMilliseconds;
        })).ToArray();
        Volatile.Write(ref burstStarted, Stopwatch.GetTimestamp());
        start.Set();
        return [.. await Task.WhenAll(tasks)];
    }

    private static IEnumerable<(string Name, Func<ConnectionMultiplexer, Reader> Create)> Contenders() =>
    [
        ("no protection (GET, else load and SET)", m => new NaiveReader(m)),
        ("HybridCache (L2 on Valkey)", m => new HybridReader(m)),
        ("FusionCache 2.9 + Redis distributed locker", m => new FusionReader(m)),
        ("SingleFlightCache (ours)", m => new SingleFlightReader(m)),
    ];

    private abstract class Reader : IAsyncDisposable
    {
        public abstract Task<BenchProduct> ReadAsync(string key, Func<CancellationToken, Task<BenchProduct>> origin);
        public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class NaiveReader(ConnectionMultiplexer multiplexer) : Reader
    {
        public override async Task<BenchProduct> ReadAsync(string key, Func<CancellationToken, Task<BenchProduct>> origin)
        {
            var db = multiplexer.GetDatabase();
            var cached = await db.StringGetAsync(key);
            if (!cached.IsNull) return BenchProduct.FromJson((byte[])cached!);
            var product = await origin(CancellationToken.None);
            await db.StringSetAsync(key, product.ToJson(), TimeSpan.FromMinutes(5));
            return product;
        }
    }

    private sealed class HybridReader : Reader
    {
        private readonly IServiceProvider _services;
        private readonly HybridCache _cache;

        public HybridReader(ConnectionMultiplexer multiplexer)
        {
            var services = new ServiceCollection();
            services.AddStackExchangeRedisCache(o => o.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer));
            services.AddHybridCache();
            _services = services.BuildServiceProvider();
            _cache = _services.GetRequiredService<HybridCache>();
        }

        public override async Task<BenchProduct> ReadAsync(string key, Func<CancellationToken, Task<BenchProduct>> origin) =>
            await _cache.GetOrCreateAsync(key, async ct => await origin(ct));

        public override ValueTask DisposeAsync() => ((IAsyncDisposable)_services).DisposeAsync();
    }

    private sealed class FusionReader : Reader
    {
        private readonly FusionCache _cache;

        public FusionReader(ConnectionMultiplexer multiplexer)
        {
            _cache = new FusionCache(new FusionCacheOptions { CacheName = "bench" });
            _cache.SetupDistributedCache(
                new RedisCache(Options.Create(new RedisCacheOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer) })),
                new FusionCacheSystemTextJsonSerializer());
            _cache.SetupDistributedLocker(new RedisDistributedLocker(
                Options.Create(new RedisDistributedLockerOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer) }),
                NullLogger<RedisDistributedLocker>.Instance));
        }

        public override async Task<BenchProduct> ReadAsync(string key, Func<CancellationToken, Task<BenchProduct>> origin) =>
            await _cache.GetOrSetAsync<BenchProduct>(key, async (_, ct) => await origin(ct), default, new FusionCacheEntryOptions(TimeSpan.FromMinutes(5)), null, CancellationToken.None);

        public override ValueTask DisposeAsync()
        {
            _cache.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class SingleFlightReader(ConnectionMultiplexer multiplexer) : Reader
    {
        private readonly SingleFlightCache _cache = new(multiplexer, new SingleFlightOptions { Channel = "bench:stampede:filled" });
        private static readonly CacheEntryOptions Entry = new() { TimeToLive = TimeSpan.FromMinutes(5) };

        public override async Task<BenchProduct> ReadAsync(string key, Func<CancellationToken, Task<BenchProduct>> origin)
        {
            var read = await _cache.GetOrLoadAsync(key, async ct => new OriginValue((await origin(ct)).ToJson(), 1), Entry);
            return BenchProduct.FromJson(read.Payload);
        }

        public override ValueTask DisposeAsync() => _cache.DisposeAsync();
    }
}
