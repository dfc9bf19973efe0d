using Aspire.Hosting.Testing;
using System.Globalization;
using Npgsql;
using StackExchange.Redis;

namespace ShopReference.Bench.Harness;

/// <summary>What the app's parts spent between two readings: Valkey (all primaries), PostgreSQL, each service's processes.</summary>
public sealed record Usage(
    double ValkeyCommands, double ValkeyCpuSeconds, double ValkeyNetBytes,
    double WalBytes, double WriteTransactions, double PostgresCpuSeconds,
    IReadOnlyDictionary<string, double> ServiceCpuSeconds, IReadOnlyDictionary<string, double> ValkeyCalls)
{
    public Usage Minus(Usage other) => new(
        ValkeyCommands - other.ValkeyCommands, ValkeyCpuSeconds - other.ValkeyCpuSeconds, ValkeyNetBytes - other.ValkeyNetBytes,
        WalBytes - other.WalBytes, WriteTransactions - other.WriteTransactions, PostgresCpuSeconds - other.PostgresCpuSeconds,
        ServiceCpuSeconds.ToDictionary(s => s.Key, s => s.Value - other.ServiceCpuSeconds.GetValueOrDefault(s.Key)),
        ValkeyCalls.ToDictionary(c => c.Key, c => c.Value - other.ValkeyCalls.GetValueOrDefault(c.Key)));

    public Usage Plus(Usage other) => Minus(other.Times(-1));

    public Usage Times(double factor) => new(
        ValkeyCommands * factor, ValkeyCpuSeconds * factor, ValkeyNetBytes * factor,
        WalBytes * factor, WriteTransactions * factor, PostgresCpuSeconds * factor,
        ServiceCpuSeconds.ToDictionary(s => s.Key, s => s.Value * factor),
        ValkeyCalls.ToDictionary(c => c.Key, c => c.Value * factor));
}

/// <summary>
/// Reads the counters the servers and the kernel keep, so a benchmark can say what one request costs each part:
/// Valkey's <c>INFO stats</c> and <c>INFO cpu</c> per primary, PostgreSQL's WAL position and transaction id (a write
/// transaction takes one id; reads take none) and the CPU time of its processes, and each service replica's CPU time
/// from <c>/proc</c>. Cumulative counters only, so two readings bracket any amount of work.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // /proc
public sealed class ResourceMeter(
    IConnectionMultiplexer valkey, NpgsqlDataSource postgres, int postmasterPid, IReadOnlyDictionary<string, IReadOnlyList<int>> servicePids,
    string? ownProcessPart = null)
{
    /// <summary>
    /// Also counts this process's own CPU under <paramref name="ownProcessPart"/>: the load generator's cost, which on a
    /// shared machine is taken from the app's. Its own threads only (the app's processes are its descendants, since the
    /// orchestrator runs in it), so the AppHost's in-process work is included with the load.
    /// </summary>
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux

    /// <summary>
    /// A meter over a running app: every replica of <paramref name="services"/> (one gateway, two of the others), with
    /// admin connections of its own to Valkey and PostgreSQL, which the caller disposes.
    /// </summary>
    public static async Task<(ResourceMeter Meter, ConnectionMultiplexer Valkey, NpgsqlDataSource Postgres)> ForAppAsync(
        ShopReference.Testing.ShopApp shop, IEnumerable<string> services, string? ownProcessPart = null)
    {
        var pids = new Dictionary<string, IReadOnlyList<int>>();
        foreach (var service in services)
        {
            pids[service] = await shop.ReplicaProcessIdsAsync(service, service == "rate-limit" ? 1 : 2, TimeSpan.FromSeconds(60));
        }
        var valkey = await ConnectionMultiplexer.ConnectAsync(await shop.App.GetConnectionStringAsync("valkey") + ",allowAdmin=true");
        var postgres = NpgsqlDataSource.Create(await shop.App.GetConnectionStringAsync("postgres")
            ?? throw new InvalidOperationException("no PostgreSQL connection string"));
        return (new ResourceMeter(valkey, postgres, shop.ProcessIdOf("postgres"), pids, ownProcessPart), valkey, postgres);
    }

    public async Task<Usage> ReadAsync()
    {
        double commands = 0, cpu = 0, net = 0;
        var calls = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var primary in valkey.GetServers().Where(s => !s.IsReplica))
        {
            var info = (await primary.InfoAsync("everything")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
            commands += Number(info["total_commands_processed"]);
            net += Number(info["total_net_input_bytes"]) + Number(info["total_net_output_bytes"]);
            cpu += Number(info["used_cpu_user"]) + Number(info["used_cpu_sys"]);
            // cmdstat_xadd: calls=12,usec=…: which commands a route's requests became.
            foreach (var (key, value) in info.Where(p => p.Key.StartsWith("cmdstat_", StringComparison.Ordinal)))
            {
                var count = Number(value.Split(',')[0]["calls=".Length..]);
                calls[key["cmdstat_".Length..]] = calls.GetValueOrDefault(key["cmdstat_".Length..]) + count;
            }
        }
        await using var command = postgres.CreateCommand("select pg_current_wal_lsn() - '0/0'::pg_lsn, txid_current()");
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        var wal = (double)reader.GetDecimal(0);
        var xid = reader.GetInt64(1); // a reading takes an id itself: one per interval, negligible against thousands of requests
        var children = ChildrenByParent();
        return new Usage(commands, cpu, net, wal, xid, TreeCpuSeconds(postmasterPid, children),
            OwnProcess(servicePids.ToDictionary(s => s.Key, s => s.Value.Sum(pid => TreeCpuSeconds(pid, children)))), calls);
    }

    private readonly Dictionary<string, int> _tracked = [];

    /// <summary>Also meters <paramref name="pid"/> (a process the benchmark started itself) as <paramref name="part"/>.</summary>
    public void Track(string part, int pid) => _tracked[part] = pid;

    private Dictionary<string, double> OwnProcess(Dictionary<string, double> services)
    {
        foreach (var (part, pid) in _tracked)
        {
            services[part] = CpuSeconds(pid);
        }
        if (ownProcessPart is not null)
        {
            services[ownProcessPart] = CpuSeconds(Environment.ProcessId);
        }
        return services;
    }

    // A process and every descendant: the orchestrator starts a project as `dotnet run` (the service is its child) and
    // Local mode may start the postmaster under a wrapper; PostgreSQL's backends, WAL writer and the change feed's WAL
    // sender are the postmaster's children.
    private static double TreeCpuSeconds(int root, ILookup<int, int> children)
    {
        var total = 0.0;
        var pending = new Stack<int>([root]);
        while (pending.TryPop(out var pid))
        {
            total += CpuSeconds(pid);
            foreach (var child in children[pid]) pending.Push(child);
        }
        return total;
    }

    private static ILookup<int, int> ChildrenByParent() =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0)
            .ToLookup(ParentOf);

    private static double CpuSeconds(int pid) =>
        Stat(pid) is { } fields ? (Number(fields[11]) + Number(fields[12])) / TicksPerSecond : 0; // utime, stime

    private static int ParentOf(int pid) => Stat(pid) is { } fields ? int.Parse(fields[1], CultureInfo.InvariantCulture) : 0;

    // The fields after "(comm)": the command name may hold spaces, so split after its closing parenthesis.
    private static string[]? Stat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null; // the process ended between the listing and the read
        }
    }

    private static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);
}
