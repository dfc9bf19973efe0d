using System.Globalization;
using System.Text;

namespace ShopReference.Hosting;

/// <summary>
/// What an operator looks at first on a Valkey node, in a few lines: keys per database (<c>INFO keyspace</c>), memory
/// against its limit (<c>INFO memory</c>), and the slowest recent commands (<c>COMMANDLOG GET … slow</c> where the server
/// has it, Valkey 8.1+; <c>SLOWLOG GET</c> elsewhere).
/// </summary>
public static class ValkeyReport
{
    /// <summary>INFO keyspace, INFO memory and the <paramref name="slowest"/> slowest recent commands of one node, as text.</summary>
    public static async Task<string> DescribeAsync(string host, int port, string password, int slowest, CancellationToken cancellationToken)
    {
        await using var client = await RespClient.ConnectAsync(host, port, password, cancellationToken);
        var report = new StringBuilder();
        var keyspace = Fields(await client.TextAsync(cancellationToken, "INFO", "keyspace"));
        report.Append(CultureInfo.InvariantCulture, $":{port} keys: ");
        report.AppendLine(keyspace.Count == 0 ? "none" : string.Join("; ", keyspace.Select(db => $"{db.Key} {db.Value}")));
        var memory = Fields(await client.TextAsync(cancellationToken, "INFO", "memory"));
        report.AppendLine(CultureInfo.InvariantCulture,
            $":{port} memory: {memory.GetValueOrDefault("used_memory_human")} used of {Limit(memory.GetValueOrDefault("maxmemory_human"))}, " +
            $"peak {memory.GetValueOrDefault("used_memory_peak_human")}, fragmentation {memory.GetValueOrDefault("mem_fragmentation_ratio")}, " +
            $"policy {memory.GetValueOrDefault("maxmemory_policy")}");
        var entries = await SlowestAsync(client, slowest, cancellationToken);
        report.AppendLine(CultureInfo.InvariantCulture, $":{port} slowest recent commands ({entries.Source}):");
        if (entries.Lines.Count == 0) report.AppendLine("  none recorded");
        foreach (var line in entries.Lines) report.AppendLine(CultureInfo.InvariantCulture, $"  {line}");
        return report.ToString();
    }

    private static async Task<(string Source, List<string> Lines)> SlowestAsync(RespClient client, int count, CancellationToken cancellationToken)
    {
        var n = count.ToString(CultureInfo.InvariantCulture);
        object? reply;
        string source;
        try
        {
            reply = await client.SendAsync(cancellationToken, "COMMANDLOG", "GET", n, "slow");
            source = "COMMANDLOG";
        }
        catch (RespErrorException)
        {
            reply = await client.SendAsync(cancellationToken, "SLOWLOG", "GET", n);
            source = "SLOWLOG";
        }
        // Each entry: id, unix time, duration in microseconds, the command's arguments, then client details.
        var lines = (reply as List<object?> ?? []).OfType<List<object?>>().Select(entry =>
        {
            var micros = entry.Count > 2 && entry[2] is long d ? d : 0;
            var words = entry.Count > 3 && entry[3] is List<object?> args ? args.Select(a => a?.ToString() ?? "").Take(4) : [];
            var at = entry.Count > 1 && entry[1] is long unix ? DateTimeOffset.FromUnixTimeSeconds(unix).ToString("HH:mm:ss", CultureInfo.InvariantCulture) : "?";
            return $"{micros,8:N0} µs at {at} UTC  {string.Join(' ', words)}";
        }).ToList();
        return (source, lines);
    }

    private static string Limit(string? maxmemory) => maxmemory is null or "0B" ? "no limit" : maxmemory;

    private static Dictionary<string, string> Fields(string info) =>
        info.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(line => !line.StartsWith('#') && line.Contains(':'))
            .Select(line => line.Split(':', 2))
            .ToDictionary(parts => parts[0], parts => parts[1], StringComparer.Ordinal);
}
