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
                    $"| {m.Contender} | {m.OpsPerSecond:N0} | {m.P50Micros:N0} | {m.P99Micros:N0} | {m.AllocatedBytesPerOp:N0} | {m.OpsPerSecond / reference.OpsPerSecond:0.00}x | {m.P99Micros / reference.P99Micros:0.00}x |");
            }
        }
        return sb.ToString();
    }
}
