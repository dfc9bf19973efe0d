using System.Globalization;
using System.Text;
using StackExchange.Redis;

namespace ShopReference.Bench.Harness;

/// <summary>
/// How work and data spread over the primaries of a cluster (or the one server): commands processed between two
/// snapshots (<c>INFO stats</c>), keys (<c>DBSIZE</c>) and memory (<c>INFO memory</c>) per primary.
/// </summary>
public sealed class ShardSpread
{
    private readonly Dictionary<string, long> _commands;

    private ShardSpread(Dictionary<string, long> commands) => _commands = commands;

    public static async Task<ShardSpread> SnapshotAsync(IConnectionMultiplexer connection)
    {
        var commands = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var primary in Primaries(connection))
        {
            commands[primary.EndPoint.ToString()!] = await InfoAsync(primary, "stats", "total_commands_processed");
        }
        return new ShardSpread(commands);
    }

    /// <summary>A markdown table: per primary, its share of the commands since the snapshot, its keys and its memory.</summary>
    public async Task<string> RenderSinceAsync(IConnectionMultiplexer connection, string title)
    {
        var rows = new List<(string Node, long Commands, long Keys, long Memory)>();
        foreach (var primary in Primaries(connection))
        {
            var node = primary.EndPoint.ToString()!;
            // The INFO and DBSIZE calls of the snapshot itself count too: a handful, against hundreds of thousands.
            var commands = await InfoAsync(primary, "stats", "total_commands_processed") - _commands.GetValueOrDefault(node);
            rows.Add((node, commands, await primary.DatabaseSizeAsync(), await InfoAsync(primary, "memory", "used_memory")));
        }
        var total = Math.Max(1, rows.Sum(r => r.Commands));
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"{title}:");
        report.AppendLine();
        report.AppendLine("| primary | commands | share | keys | used memory (bytes) |");
        report.AppendLine("|---|---:|---:|---:|---:|");
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| shard {i + 1} | {row.Commands:N0} | {100.0 * row.Commands / total:0}% | {row.Keys:N0} | {row.Memory:N0} |");
        }
        return report.ToString();
    }

    private static IEnumerable<IServer> Primaries(IConnectionMultiplexer connection) =>
        connection.GetServers().Where(s => !s.IsReplica).OrderBy(s => s.EndPoint.ToString(), StringComparer.Ordinal);

    private static async Task<long> InfoAsync(IServer server, string section, string field)
    {
        var info = await server.InfoAsync(section);
        return long.Parse(info.SelectMany(g => g).First(p => p.Key == field).Value, CultureInfo.InvariantCulture);
    }
}
