using System.Globalization;

namespace ShopReference.Hosting;

/// <summary>
/// What each node of a cluster is now, from <c>CLUSTER NODES</c> as one node sees it: a primary with its slots, a
/// replica of a primary, or failed. Roles change on failover, so the AppHost reads them again and again.
/// </summary>
public static class ValkeyClusterRoles
{
    /// <summary>Port → a short description (<c>primary, slots 0-5460</c>, <c>replica of :6380</c>, <c>failed</c>).</summary>
    public static async Task<IReadOnlyDictionary<int, string>> ReadAsync(IEnumerable<int> ports, string password, CancellationToken cancellationToken)
    {
        foreach (var port in ports)
        {
            try
            {
                await using var client = await RespClient.ConnectAsync("127.0.0.1", port, password, cancellationToken);
                return Parse(await client.TextAsync(cancellationToken, "CLUSTER", "NODES"));
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or RespErrorException)
            {
                // that node is down: ask the next one
            }
        }
        return new Dictionary<int, string>();
    }

    /// <summary>Parses <c>CLUSTER NODES</c>: <c>id host:port@bus flags primary-id ping pong epoch link slot…</c> per line.</summary>
    public static IReadOnlyDictionary<int, string> Parse(string nodes)
    {
        var lines = nodes.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => l.Split(' ')).Where(f => f.Length >= 8).ToList();
        var portOf = lines.ToDictionary(f => f[0], f => PortOf(f[1]));
        var roles = new Dictionary<int, string>();
        foreach (var fields in lines)
        {
            var flags = fields[2].Split(',');
            roles[PortOf(fields[1])] = flags.Contains("fail") ? "failed"
                : flags.Contains("master") ? $"primary, slots {(fields.Length > 8 ? string.Join(" ", fields[8..]) : "none")}"
                : flags.Contains("slave") && portOf.TryGetValue(fields[3], out var primary) ? $"replica of :{primary}"
                : fields[2];
        }
        return roles;
    }

    private static int PortOf(string address) =>
        int.Parse(address[(address.LastIndexOf(':') + 1)..].Split('@')[0], CultureInfo.InvariantCulture);
}
