using System.Globalization;
using System.Text;

namespace ShopReference.Bench.Harness;

/// <summary>
/// One table per concurrency level; every row is compared with the baseline row of the same run
/// (throughput ratio > 1 is faster than the baseline, p99 ratio &lt; 1 is tighter).
/// </summary>
public static class MarkdownReport
{
    public static string Render(string title, string baseline, IReadOnlyList<Measurement> measurements)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"### {title}");
        foreach (var group in measurements.GroupBy(m => m.Concurrency))
        {
            var reference = group.Single(m => m.Contender == baseline);
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"Concurrency {group.Key} (baseline: {baseline})");
            sb.AppendLine();
            sb.AppendLine("| contender | ops/s | p50 µs | p99 µs | alloc B/op | throughput vs baseline | p99 vs baseline |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var m in group)
            {
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {m.Contender} | {m.OpsPerSecond:N0} | {m.P50Micros:N0} | {m.P99Micros:N0} | {Allocation(m.AllocatedBytesPerOp)} | {m.OpsPerSecond / reference.OpsPerSecond:0.00}x | {m.P99Micros / reference.P99Micros:0.00}x |");
            }
        }
        if (measurements.Any(m => m.AllocatedBytesPerOp < 0))
        {
            sb.AppendLine();
            sb.AppendLine("n/a: the process-wide allocation counter went backwards during that measurement (it is not monotonic under Server GC's dynamic heap count), so it gives no figure.");
        }
        return sb.ToString();
    }

    // A negative difference is the counter's error, not a figure: printing it would read as memory given back.
    private static string Allocation(double bytesPerOperation) =>
        bytesPerOperation < 0 ? "n/a" : bytesPerOperation.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>
    /// Where each contender's time went: the CPU one operation cost each part (µs), with the idle app's background work
    /// over the same time taken off, so the parts' sum is what the machine spent per operation. On a machine whose cores
    /// every part shares, a contender's rate is about the cores divided by that sum.
    /// </summary>
    public static string RenderCpu(IReadOnlyList<Measurement> measurements, Usage idlePerSecond, IReadOnlyList<string> parts)
    {
        var sb = new StringBuilder();
        foreach (var group in measurements.Where(m => m.Used is not null).GroupBy(m => m.Concurrency))
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"CPU per operation, µs, concurrency {group.Key} (idle work taken off)");
            sb.AppendLine();
            sb.AppendLine($"| contender | {string.Join(" | ", parts)} | Valkey | PostgreSQL | total |");
            sb.AppendLine($"|---|{string.Concat(Enumerable.Repeat("---:|", parts.Count + 3))}");
            foreach (var m in group)
            {
                var used = m.Used!.Minus(idlePerSecond.Times(m.Elapsed.TotalSeconds)).Times(1_000_000.0 / m.Operations);
                var cells = parts.Select(p => used.ServiceCpuSeconds.GetValueOrDefault(p))
                    .Append(used.ValkeyCpuSeconds).Append(used.PostgresCpuSeconds).ToList();
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {m.Contender} | {string.Join(" | ", cells.Select(c => c.ToString("N0", CultureInfo.InvariantCulture)))} | {cells.Sum():N0} |");
            }
        }
        return sb.ToString();
    }
}
