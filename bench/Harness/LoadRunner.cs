using System.Diagnostics;

namespace ShopReference.Bench.Harness;

/// <summary>What one contender did in one run.</summary>
public sealed record Measurement(string Contender, int Concurrency, long Operations, TimeSpan Elapsed, double P50Micros, double P99Micros, double AllocatedBytesPerOp)
{
    public double OpsPerSecond => Operations / Elapsed.TotalSeconds;

    /// <summary>What the app's parts spent while this contender ran (its rounds summed), when the run was metered.</summary>
    public Usage? Used { get; init; }
}

/// <summary>
/// Closed-loop load: <c>concurrency</c> workers each run the operation back to back for a fixed time after a warm-up,
/// recording every latency. Bounded in time, so a run always ends by itself.
/// </summary>
public static class LoadRunner
{
    public static async Task<Measurement> MeasureAsync(string contender, Func<ValueTask> operation, int concurrency, TimeSpan warmup, TimeSpan duration)
    {
        await RunAsync(operation, concurrency, warmup, record: false);
        GC.Collect();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var started = Stopwatch.GetTimestamp();
        var latencies = await RunAsync(operation, concurrency, duration, record: true);
        var elapsed = Stopwatch.GetElapsedTime(started);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;

        var all = latencies.SelectMany(l => l).ToArray();
        Array.Sort(all);
        return new Measurement(contender, concurrency, all.Length, elapsed,
            Percentile(all, 0.50), Percentile(all, 0.99), all.Length == 0 ? 0 : (double)allocated / all.Length);
    }

    /// <summary>
    /// Measures several contenders in alternating rounds (A, B, A, B, …) so drift in the machine or the server (GC,
    /// growing data, a noisy neighbour) lands on every contender alike; each result merges its rounds.
    /// </summary>
    public static async Task<List<Measurement>> MeasureInterleavedAsync(
        IReadOnlyList<(string Contender, Func<ValueTask> Operation)> contenders, int concurrency, TimeSpan warmup, TimeSpan duration, int rounds = 4,
        Func<Task<Usage>>? meter = null)
    {
        foreach (var (_, operation) in contenders)
        {
            await RunAsync(operation, concurrency, warmup, record: false);
        }
        var latencies = contenders.Select(_ => new List<long>()).ToArray();
        var elapsed = new TimeSpan[contenders.Count];
        var allocated = new long[contenders.Count];
        var used = new Usage?[contenders.Count];
        for (var round = 0; round < rounds; round++)
        {
            for (var i = 0; i < contenders.Count; i++)
            {
                var usageBefore = meter is null ? null : await meter();
                var before = GC.GetTotalAllocatedBytes(precise: true);
                var started = Stopwatch.GetTimestamp();
                foreach (var worker in await RunAsync(contenders[i].Operation, concurrency, duration / rounds, record: true))
                {
                    latencies[i].AddRange(worker);
                }
                elapsed[i] += Stopwatch.GetElapsedTime(started);
                allocated[i] += GC.GetTotalAllocatedBytes(precise: true) - before;
                if (meter is not null)
                {
                    var slice = (await meter()).Minus(usageBefore!);
                    used[i] = used[i] is { } sum ? sum.Plus(slice) : slice;
                }
            }
        }
        return [.. contenders.Select((c, i) =>
        {
            var all = latencies[i].ToArray();
            Array.Sort(all);
            return new Measurement(c.Contender, concurrency, all.Length, elapsed[i], Percentile(all, 0.50), Percentile(all, 0.99),
                all.Length == 0 ? 0 : (double)allocated[i] / all.Length) { Used = used[i] };
        })];
    }

    private static async Task<List<long>[]> RunAsync(Func<ValueTask> operation, int concurrency, TimeSpan duration, bool record)
    {
        var until = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var perWorker = new List<long>[concurrency];
        var workers = new Task[concurrency];
        for (var w = 0; w < concurrency; w++)
        {
            var latencies = perWorker[w] = new List<long>(record ? 100_000 : 0);
            workers[w] = Task.Run(async () =>
            {
                while (true)
                {
                    var start = Stopwatch.GetTimestamp();
                    if (start >= until)
                    {
                        return;
                    }
                    await operation();
                    if (record)
                    {
                        latencies.Add(Stopwatch.GetTimestamp() - start);
                    }
                }
            });
        }
        await Task.WhenAll(workers);
        return perWorker;
    }

    private static double Percentile(long[] sortedTicks, double p) =>
        sortedTicks.Length == 0 ? double.NaN
        : sortedTicks[Math.Min(sortedTicks.Length - 1, (int)(p * sortedTicks.Length))] * 1_000_000.0 / Stopwatch.Frequency;
}
