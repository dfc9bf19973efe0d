using System.Text;
using System.Threading.RateLimiting;
using RedisRateLimiting;
using ShopReference.Bench.Harness;
using ShopReference.Testing;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// Decisions per second and p99 per algorithm, ours against RedisRateLimiting (the NuGet package) where it has the same
/// algorithm, on the same server in the same run; then the admitted-vs-limit overshoot of each under 2 x 64 concurrent clients.
/// </summary>
public sealed class RateLimitScenario : IScenario
{
    private const int Partitions = 1_000;
    private const string Theirs = "RedisRateLimiting 1.2.1";

    public string Name => "ratelimit";
    public string Description => "rate-limit decisions per algorithm vs RedisRateLimiting, and overshoot under concurrency";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var first = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(servers.Valkey.ConnectionString);
        var report = new StringBuilder();
        report.AppendLine("### Decision throughput (1,000 client partitions, every request admitted; contenders measured in alternating rounds)");
        report.AppendLine();

        foreach (var (algorithm, peer) in Contenders().Where(c => options.Only is null || c.Algorithm.ToString().Contains(options.Only, StringComparison.OrdinalIgnoreCase)))
        {
            var measurements = new List<Measurement>();
            foreach (var concurrency in options.ConcurrencyLevels)
            {
                var contenders = new List<(string, Func<ValueTask>)>();
                if (peer is not null)
                {
                    contenders.Add(Decide(Theirs, Partitioned(p => peer(first, p, 1_000_000, TimeSpan.FromHours(1)))));
                }
                contenders.Add(Decide($"ours: {algorithm}", Partitioned(p => Ours(algorithm, first, p, 1_000_000, TimeSpan.FromHours(1)))));
                measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(contenders, concurrency, options.Warmup, options.Duration));
            }
            report.AppendLine(MarkdownReport.Render(algorithm.ToString(), peer is null ? $"ours: {algorithm}" : Theirs, measurements));
        }

        report.AppendLine("### Overshoot: 2 connections x 64 concurrent clients x 5 attempts on one partition, limit 100");
        report.AppendLine();
        report.AppendLine("| contender | admitted | limit | overshoot |");
        report.AppendLine("|---|---:|---:|---:|");
        foreach (var (algorithm, peer) in Contenders())
        {
            if (peer is not null)
            {
                await AppendOvershootAsync(report, $"{Theirs} ({algorithm})", p => peer(first, p, 100, TimeSpan.FromHours(1)), p => peer(second, p, 100, TimeSpan.FromHours(1)));
            }
            await AppendOvershootAsync(report, $"ours: {algorithm}", p => Ours(algorithm, first, p, 100, TimeSpan.FromHours(1)), p => Ours(algorithm, second, p, 100, TimeSpan.FromHours(1)));
        }

        report.AppendLine();
        report.AppendLine("### Memory per client: `MEMORY USAGE` of the partition's key after 100 admitted decisions (limit 100, window 1 h)");
        report.AppendLine();
        report.AppendLine("| algorithm | bytes |");
        report.AppendLine("|---|---:|");
        foreach (var algorithm in Enum.GetValues<RateLimitAlgorithm>().Where(a => a != RateLimitAlgorithm.Concurrency))
        {
            var limiter = (ValkeyRateLimiter)Ours(algorithm, first, "memory-" + Guid.NewGuid().ToString("N")[..8], 100, TimeSpan.FromHours(1));
            for (var i = 0; i < 100; i++)
            {
                using var lease = await limiter.AcquireAsync(1);
            }
            var bytes = await first.GetDatabase().ExecuteAsync("MEMORY", "USAGE", limiter.Key);
            report.AppendLine($"| {algorithm} | {(long)bytes:N0} |");
        }
        return report.ToString();
    }

    private static IEnumerable<(RateLimitAlgorithm Algorithm, Func<IConnectionMultiplexer, string, int, TimeSpan, RateLimiter>? Peer)> Contenders() =>
    [
        (RateLimitAlgorithm.FixedWindow, (m, p, limit, window) => new RedisFixedWindowRateLimiter<string>(p, new() { ConnectionMultiplexerFactory = () => m, PermitLimit = limit, Window = window })),
        (RateLimitAlgorithm.SlidingWindowLog, (m, p, limit, window) => new RedisSlidingWindowRateLimiter<string>(p, new() { ConnectionMultiplexerFactory = () => m, PermitLimit = limit, Window = window })),
        (RateLimitAlgorithm.TokenBucket, (m, p, limit, window) => new RedisTokenBucketRateLimiter<string>(p, new()
        {
            ConnectionMultiplexerFactory = () => m, TokenLimit = limit, TokensPerPeriod = Math.Max(1, limit / 3600), ReplenishmentPeriod = window / 3600,
        })),
        (RateLimitAlgorithm.SlidingWindowCounter, null),
        (RateLimitAlgorithm.Gcra, null),
    ];

    private static RateLimiter Ours(RateLimitAlgorithm algorithm, IConnectionMultiplexer multiplexer, string partition, int limit, TimeSpan window) =>
        ValkeyRateLimiters.Create(algorithm, multiplexer.GetDatabase(), partition, new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = limit, Window = window });

    private static RateLimiter[] Partitioned(Func<string, RateLimiter> create)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        return [.. Enumerable.Range(0, Partitions).Select(i => create($"bench-{run}-{i}"))];
    }

    private static (string, Func<ValueTask>) Decide(string contender, RateLimiter[] limiters) => (contender, async () =>
    {
        using var lease = await limiters[Random.Shared.Next(limiters.Length)].AcquireAsync(1);
        if (!lease.IsAcquired) throw new InvalidOperationException($"{contender} rejected below its limit");
    });

    private static async Task AppendOvershootAsync(StringBuilder report, string contender, Func<string, RateLimiter> onFirst, Func<string, RateLimiter> onSecond)
    {
        var partition = "overshoot-" + Guid.NewGuid().ToString("N")[..8];
        RateLimiter[] limiters = [onFirst(partition), onSecond(partition)];
        var admitted = 0;
        await Task.WhenAll(Enumerable.Range(0, 128).Select(client => Task.Run(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                using var lease = await limiters[client % 2].AcquireAsync(1);
                if (lease.IsAcquired) Interlocked.Increment(ref admitted);
            }
        })));
        report.AppendLine($"| {contender} | {admitted} | 100 | {admitted - 100:+0;-0;0} |");
    }
}
