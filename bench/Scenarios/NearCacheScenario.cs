using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane.StackExchangeRedis;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// Two "instances" (each its own connection, caches and near cache, as two catalog replicas have) on one Valkey.
/// Throughput: hot product reads on instance A, each delivering a decoded product — the raw GET floor (baseline), our
/// hit without and with the near cache, FusionCache 2.9 (L1 + Redis L2 + Redis backplane) and HybridCache (L1 + Redis L2).
/// Staleness: A writes a new version while B reads the same key in a tight loop; the time from A's acknowledged write
/// until B first reads the new version. Every L1 keeps an entry at most 10 s (the catalog's near-cache lifetime).
/// </summary>
public sealed class NearCacheScenario : IScenario
{
    private const int Products = 1_000;
    private const string Baseline = "raw Valkey GET + JSON (floor)";
    private static readonly TimeSpan LocalLifetime = TimeSpan.FromSeconds(10);
    private static readonly CacheEntryOptions Entry = new() { TimeToLive = TimeSpan.FromMinutes(10) };
    private static readonly FusionCacheEntryOptions FusionEntry = new() { Duration = TimeSpan.FromMinutes(10), MemoryCacheDuration = LocalLifetime };
    private static readonly HybridCacheEntryOptions HybridEntry = new() { Expiration = TimeSpan.FromMinutes(10), LocalCacheExpiration = LocalLifetime };

    public string Name => "near-cache";
    public string Description => "hot reads: near cache vs raw GET vs FusionCache/HybridCache; cross-instance staleness";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var a = await Instance.StartAsync(servers.Valkey.ConnectionString);
        await using var b = await Instance.StartAsync(servers.Valkey.ConnectionString);
        await SeedAsync(a);
        await Eventually.UntilAsync(() => a.Near.IsTrusted && b.Near.IsTrusted, TimeSpan.FromSeconds(10), "the near caches never trusted their channel");

        var db = a.Multiplexer.GetDatabase();
        var measurements = new List<Measurement>();
        foreach (var concurrency in options.ConcurrencyLevels)
        {
            (string, Func<ValueTask>)[] contenders =
            [
                (Baseline, async () => BenchProduct.FromJson((byte[])(await db.StringGetAsync(RawKey(Random.Shared.Next(Products))))!)),
                ("our hit, no near cache (SingleFlightCache)", async () =>
                    BenchProduct.FromJson((await a.Shared.GetOrLoadAsync(OurKey(Random.Shared.Next(Products)), NoOrigin, Entry)).Payload)),
                ("our hit with near cache (NearCache)", async () =>
                    _ = (await a.Near.GetOrLoadAsync(OurKey(Random.Shared.Next(Products)), NoOrigin, Entry, Decode)).Value!),
                ("FusionCache 2.9, L1 + Redis + backplane", async () =>
                    _ = await a.Fusion.GetOrSetAsync<BenchProduct>(OtherKey(Random.Shared.Next(Products)), (_, _) => throw new InvalidOperationException("miss"), FusionEntry)),
                ("HybridCache, L1 + Redis", async () =>
                    _ = await a.Hybrid.GetOrCreateAsync<BenchProduct>(OtherKey(Random.Shared.Next(Products)), _ => throw new InvalidOperationException("miss"), HybridEntry)),
            ];
            measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(
                [.. contenders.Where(c => options.Only is null || c.Item1 == Baseline || c.Item1.Contains(options.Only, StringComparison.OrdinalIgnoreCase))],
                concurrency, options.Warmup, options.Duration));
        }

        var report = new StringBuilder(MarkdownReport.Render("near cache: hot product reads (1,000 products, all held in every L1)", Baseline, measurements));
        report.AppendLine();
        report.AppendLine("### near cache: cross-instance staleness (A writes, B reads in a tight loop)");
        report.AppendLine();
        report.AppendLine("| contender | writes | p50 ms | p99 ms | max ms | not seen within 15 s | stale reads after the invalidation arrived |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        report.AppendLine(await MeasureStalenessAsync("ours (NearCache)", 300, OurKey(Products + 1),
            async (key, version) => await a.Near.SetAsync(key, new OriginValue(Product(version).ToJson(), version), Entry),
            async key => (await b.Near.GetOrLoadAsync(key, NoOrigin, Entry, Decode)).Value!.Version,
            b.Near));
        report.AppendLine(await MeasureStalenessAsync("FusionCache 2.9 + backplane", 300, OtherKey(Products + 1),
            async (key, version) => await a.Fusion.SetAsync(key, Product(version), FusionEntry),
            async key => (await b.Fusion.GetOrSetAsync<BenchProduct>(key, (_, _) => throw new InvalidOperationException("miss"), FusionEntry)).Version,
            near: null));
        report.AppendLine(await MeasureStalenessAsync("HybridCache (no backplane)", 8, OtherKey(Products + 2),
            async (key, version) => await a.Hybrid.SetAsync(key, Product(version), HybridEntry),
            async key => (await b.Hybrid.GetOrCreateAsync<BenchProduct>(key, _ => throw new InvalidOperationException("miss"), HybridEntry)).Version,
            near: null));
        return report.ToString();
    }

    private static string RawKey(int id) => $"bench:near:raw:{id}";
    private static string OurKey(int id) => $"bench:near:ours:{{{id}}}";
    private static string OtherKey(int id) => $"bench:near:other:{id}";
    private static BenchProduct Product(long version) => BenchProduct.Make(0) with { Version = (int)version };
    private static BenchProduct Decode(byte[] json) => BenchProduct.FromJson(json);
    private static Task<OriginValue> NoOrigin(CancellationToken _) => throw new InvalidOperationException("a hot-read benchmark must not miss");

    private static async Task SeedAsync(Instance instance)
    {
        var db = instance.Multiplexer.GetDatabase();
        for (var id = 0; id <= Products + 2; id++)
        {
            var product = BenchProduct.Make(id);
            await db.StringSetAsync(RawKey(id), product.ToJson(), TimeSpan.FromHours(1));
            await instance.Near.SetAsync(OurKey(id), new OriginValue(product.ToJson(), product.Version), Entry);
            await instance.Fusion.SetAsync(OtherKey(id), product, FusionEntry);
            await instance.Hybrid.SetAsync(OtherKey(id), product, HybridEntry);
        }
    }

    /// <summary>
    /// Per write: B's reader loop runs before, during and after A's write, and the time from the start of A's write to
    /// B's first read of the new version is recorded. From the start, not from A's acknowledgement: ours announces the
    /// write before it answers, FusionCache's backplane after (in the background, its default), so a clock started at
    /// the acknowledgement would favour whichever announces later. With <paramref name="near"/>,
    /// B's own invalidation events tell when the message arrived: any read that began after it and returned the old
    /// version is counted as stale (it must stay 0).
    /// </summary>
    private static async Task<string> MeasureStalenessAsync(string contender, int writes, string key,
        Func<string, long, Task> write, Func<string, Task<long>> read, NearCache? near)
    {
        var cap = TimeSpan.FromSeconds(15);
        var samples = new List<double>();
        var notSeen = 0;
        long staleAfterArrival = 0;
        long arrivedAt = 0;
        long awaited = long.MaxValue; // the version whose announcement is being waited for
        void OnInvalidated(Announcement announced)
        {
            if (announced.Key == key && announced.Version >= Interlocked.Read(ref awaited))
            {
                Interlocked.CompareExchange(ref arrivedAt, Stopwatch.GetTimestamp(), 0);
            }
        }
        if (near is not null) near.Invalidated += OnInvalidated;
        try
        {
            var version = 1_000_000L * (1 + Random.Shared.Next(1_000));
            await write(key, version);
            for (var i = 0; i < writes; i++)
            {
                // B holds the current version in its L1 before the next write.
                await Eventually.UntilAsync(async () => await read(key) == version, cap, $"{contender}: B never read version {version}");
                for (var warm = 0; warm < 3; warm++) await read(key);

                var next = version + 1;
                Interlocked.Exchange(ref awaited, next);
                Interlocked.Exchange(ref arrivedAt, 0);
                using var stop = new CancellationTokenSource(cap * 2);
                long seenAt = 0;
                var reader = Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        var started = Stopwatch.GetTimestamp();
                        var arrived = Interlocked.Read(ref arrivedAt);
                        var seen = await read(key);
                        if (seen >= next)
                        {
                            seenAt = Stopwatch.GetTimestamp();
                            return;
                        }
                        if (arrived != 0 && arrived < started)
                        {
                            Interlocked.Increment(ref staleAfterArrival);
                        }
                        await Task.Yield(); // a tight loop, but one that lets the subscription's messages be handled on 2 cores
                    }
                });
                var writeStarted = Stopwatch.GetTimestamp();
                await write(key, next);
                var finished = await Task.WhenAny(reader, Task.Delay(cap)) == reader;
                await stop.CancelAsync();
                await reader;
                if (finished && seenAt != 0)
                {
                    samples.Add(Stopwatch.GetElapsedTime(writeStarted, seenAt).TotalMilliseconds);
                }
                else
                {
                    notSeen++;
                }
                version = next;
            }
        }
        finally
        {
            if (near is not null) near.Invalidated -= OnInvalidated;
        }
        samples.Sort();
        string Ms(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        return samples.Count == 0
            ? $"| {contender} | {writes} | – | – | – | {notSeen} | {(near is null ? "not observable" : staleAfterArrival)} |"
            : $"| {contender} | {writes} | {Ms(samples[samples.Count / 2])} | {Ms(samples[Math.Min(samples.Count - 1, (int)(samples.Count * 0.99))])} | {Ms(samples[^1])} | {notSeen} | {(near is null ? "not observable" : staleAfterArrival)} |";
    }

    /// <summary>What one application instance holds: its own connection and its own caches of every kind.</summary>
    private sealed class Instance : IAsyncDisposable
    {
        private readonly ServiceProvider _services;

        private Instance(ConnectionMultiplexer multiplexer)
        {
            Multiplexer = multiplexer;
            Shared = new SingleFlightCache(multiplexer, new SingleFlightOptions { Channel = "bench:near:filled" });
            Near = new NearCache(Shared, multiplexer, new NearCacheOptions { TimeToLive = LocalLifetime });
            Fusion = new FusionCache(new FusionCacheOptions { CacheName = "bench-near" });
            Fusion.SetupDistributedCache(
                new RedisCache(Options.Create(new RedisCacheOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer) })),
                new FusionCacheSystemTextJsonSerializer());
            Fusion.SetupBackplane(new RedisBackplane(
                new RedisBackplaneOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer) },
                NullLogger<RedisBackplane>.Instance));
            var services = new ServiceCollection();
            services.AddStackExchangeRedisCache(o => o.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer));
            services.AddHybridCache();
            _services = services.BuildServiceProvider();
            Hybrid = _services.GetRequiredService<HybridCache>();
        }

        public ConnectionMultiplexer Multiplexer { get; }
        public SingleFlightCache Shared { get; }
        public NearCache Near { get; }
        public FusionCache Fusion { get; }
        public HybridCache Hybrid { get; }

        public static async Task<Instance> StartAsync(string connectionString) =>
            new(await ConnectionMultiplexer.ConnectAsync(connectionString));

        public async ValueTask DisposeAsync()
        {
            await Near.DisposeAsync();
            await Shared.DisposeAsync();
            Fusion.Dispose();
            await _services.DisposeAsync();
            await Multiplexer.DisposeAsync();
        }
    }
}
