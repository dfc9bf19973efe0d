using System.Globalization;
using System.Text;
using ShopReference.Bench.Scenarios;

namespace ShopReference.Bench.Harness;

/// <summary>Bytes a family of Valkey keys held at the end of the run, and how many items (carts, events, …) they hold.</summary>
public sealed record KeyFamily(string Name, string Pattern, long Keys, long Bytes, long Items, string ItemName)
{
    public double BytesPerItem => Items == 0 ? 0 : (double)Bytes / Items;
}

/// <summary>
/// Turns measured costs per request into what a shop needs at a given rate: a request mix (the assumption, stated
/// here once) times each route's measured cost, scaled to the rate, with the headroom each part should keep. Every
/// input is either measured by <see cref="CapacityScenario"/> in the same run or one of the constants below.
/// </summary>
public static class CapacityModel
{
    public const string ProductPage = "product page";
    public const string ListPage = "list page";
    public const string CartAdd = "cart add";
    public const string Leaderboard = "leaderboard";
    public const string Checkout = "checkout (add to a new cart + check out)";

    /// <summary>
    /// Share of each operation in the shop's traffic. Assumed, not measured: mostly product views, as in the shopper
    /// simulation (a cart add on roughly one view in four, a checkout on a few percent of carts).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, double> Mix = new Dictionary<string, double>
    {
        [ProductPage] = 0.60,
        [ListPage] = 0.20,
        [CartAdd] = 0.14,
        [Leaderboard] = 0.05,
        [Checkout] = 0.01,
    };

    public static readonly double[] Rates = [10_000, 100_000, 1_000_000];

    // Headroom. Valkey runs commands on one thread: a primary kept at half a core absorbs a spike and a failover's
    // resync. A service replica is sized as 2 cores kept at 60%.
    private const double ValkeyCoreBudget = 0.5;
    private const double ReplicaCores = 2;
    private const double ReplicaUtilisation = 0.6;

    // Data that lives longer than a request. Assumed: a million products, all cached; a shopper client is remembered by
    // the limiter for its 1-minute window; a cart lives its 30-minute idle timeout after ten adds.
    private const double CatalogProducts = 1_000_000;
    private const double AddsPerCart = 10;
    private static readonly TimeSpan CartLifetime = TimeSpan.FromMinutes(30); // CartLimits.IdleTimeout
    private static readonly TimeSpan DedupeLifetime = TimeSpan.FromHours(26); // EventCounts.DedupeTtl
    private const double RequestsPerClientPerSecond = 0.5;

    public static string Render(IReadOnlyList<RouteCost> costs, int concurrency, Usage idlePerSecond, IReadOnlyList<KeyFamily> families)
    {
        var report = new StringBuilder();
        report.AppendLine(Invariant($"### Cost of one operation per route (whole app on {Environment.ProcessorCount} cores, {concurrency} connections to the gateway's own port, idle cost taken off)"));
        report.AppendLine();
        report.AppendLine("| route | ops/s | p99 ms | Valkey commands | Valkey CPU µs | Valkey bytes | PG write txns | WAL bytes | PG CPU µs | gateway CPU µs | catalog CPU µs | cart CPU µs | analytics CPU µs |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var c in costs)
        {
            var u = c.PerOperation;
            report.AppendLine(Invariant(
                $"| {c.Route} | {c.Load.OpsPerSecond:N0} | {c.Load.P99Micros / 1000:0.0} | {u.ValkeyCommands:0.0} | {u.ValkeyCpuSeconds * 1e6:N0} | {u.ValkeyNetBytes:N0} | {u.WriteTransactions:0.00} | {u.WalBytes:N0} | {u.PostgresCpuSeconds * 1e6:N0} | ") + Invariant(
                $"{Cpu(u, "rate-limit"):N0} | {Cpu(u, "catalog"):N0} | {Cpu(u, "cart-session"):N0} | {Cpu(u, "analytics"):N0} |"));
        }
        report.AppendLine();
        report.AppendLine("The Valkey commands of one operation, most frequent first:");
        report.AppendLine();
        foreach (var c in costs)
        {
            var top = c.PerOperation.ValkeyCalls.Where(k => k.Value >= 0.05).OrderByDescending(k => k.Value).Take(8);
            report.AppendLine($"- {c.Route}: " + string.Join(", ", top.Select(k => Invariant($"{k.Key} {k.Value:0.0}"))));
        }
        report.AppendLine();
        report.AppendLine(Invariant($"Idle app per second (taken off above): {idlePerSecond.ValkeyCommands:N0} Valkey commands, {idlePerSecond.WriteTransactions:0.0} PostgreSQL write transactions, ") + Invariant(
            $"{idlePerSecond.ServiceCpuSeconds.Values.Sum() * 1000:N0} ms of service CPU."));
        report.AppendLine();

        report.AppendLine("### Valkey memory by key family at the end of the run (`MEMORY USAGE` of every key)");
        report.AppendLine();
        report.AppendLine("| family | pattern | keys | bytes | items | bytes per item |");
        report.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var f in families)
        {
            report.AppendLine(Invariant($"| {f.Name} | `{f.Pattern}` | {f.Keys:N0} | {f.Bytes:N0} | {f.Items:N0} {f.ItemName} | {f.BytesPerItem:N0} |"));
        }
        report.AppendLine();

        var byRoute = costs.ToDictionary(c => c.Route);
        var mix = Mix.Where(m => byRoute.ContainsKey(m.Key)).ToDictionary(m => m.Key, m => m.Value / Mix.Where(x => byRoute.ContainsKey(x.Key)).Sum(x => x.Value));
        double PerOperation(Func<RouteCost, double> cost) => mix.Sum(m => m.Value * cost(byRoute[m.Key]));
        var requestsPerOperation = PerOperation(c => c.RequestsPerOperation);
        double Share(string route) => mix.GetValueOrDefault(route);
        double Family(string name) => families.FirstOrDefault(f => f.Name == name)?.BytesPerItem ?? 0;

        report.AppendLine("### What a shop needs, by request rate");
        report.AppendLine();
        report.AppendLine("Mix of operations: " + string.Join(", ", mix.Select(m => Invariant($"{m.Key} {m.Value:P0}"))) + ".");
        report.AppendLine();
        report.AppendLine("| | " + string.Join(" | ", Rates.Select(r => Invariant($"{r:N0} req/s"))) + " |");
        report.AppendLine("|---|" + string.Concat(Rates.Select(_ => "---:|")));
        void Row(string name, Func<double, string> value) => report.AppendLine($"| {name} | " + string.Join(" | ", Rates.Select(value)) + " |");
        double Ops(double rate) => rate / requestsPerOperation;

        Row("Valkey commands/s", r => Invariant($"{Ops(r) * PerOperation(c => c.PerOperation.ValkeyCommands):N0}"));
        Row("Valkey CPU (cores, all primaries)", r => Invariant($"{Ops(r) * PerOperation(c => c.PerOperation.ValkeyCpuSeconds):0.00}"));
        Row(Invariant($"Valkey shards (primaries at ≤ {ValkeyCoreBudget:P0} of a core), a replica each"), r => Invariant($"{Math.Max(1, Math.Ceiling(Ops(r) * PerOperation(c => c.PerOperation.ValkeyCpuSeconds) / ValkeyCoreBudget)):N0}"));
        Row("Valkey network (MB/s)", r => Invariant($"{Ops(r) * PerOperation(c => c.PerOperation.ValkeyNetBytes) / 1e6:N1}"));
        foreach (var service in costs[0].PerOperation.ServiceCpuSeconds.Keys)
        {
            Row(Invariant($"{service} replicas ({ReplicaCores:0} cores at {ReplicaUtilisation:P0})"), r =>
            {
                var cores = Ops(r) * PerOperation(c => c.PerOperation.ServiceCpuSeconds.GetValueOrDefault(service));
                return Invariant($"{Math.Max(1, Math.Ceiling(cores / (ReplicaCores * ReplicaUtilisation))):N0} ({cores:0.0} cores)");
            });
        }
        Row("PostgreSQL write transactions/s", r => Invariant($"{Ops(r) * PerOperation(c => c.PerOperation.WriteTransactions):N0}"));
        Row("PostgreSQL WAL (MB/s)", r => Invariant($"{Ops(r) * PerOperation(c => c.PerOperation.WalBytes) / 1e6:N2}"));
        Row("PostgreSQL CPU (cores)", r => Invariant($"{Ops(r) * PerOperation(c => c.PerOperation.PostgresCpuSeconds):0.00}"));
        Row("events into the one stream/s (views + orders)", r => Invariant($"{Ops(r) * (Share(ProductPage) + Share(Checkout)):N0}"));

        // Memory: what outlives a request, from the bytes per item measured above.
        double Carts(double rate) => Ops(rate) * (Share(CartAdd) + Share(Checkout)) / AddsPerCart * CartLifetime.TotalSeconds;
        double Dedupe(double rate) => Ops(rate) * (Share(ProductPage) + Share(Checkout)) * DedupeLifetime.TotalSeconds;
        double Clients(double rate) => rate / RequestsPerClientPerSecond;
        Row(Invariant($"memory: product cache, {CatalogProducts:N0} products (GB)"), _ => Invariant($"{CatalogProducts * Family("product cache") / 1e9:0.0}"));
        Row(Invariant($"memory: live carts ({AddsPerCart:0} adds, {CartLifetime.TotalMinutes:0} min idle) (GB)"), r => Invariant($"{Carts(r) * Family("carts") / 1e9:0.0}"));
        Row("memory: limiter keys, a client per 2 s of traffic (GB)", r => Invariant($"{Clients(r) * Family("rate-limit keys") / 1e9:0.0}"));
        Row(Invariant($"memory: analytics dedupe sets, {DedupeLifetime.TotalHours:0} h of events (GB)"), r => Invariant($"{Dedupe(r) * Family("analytics dedupe") / 1e9:0.0}"));
        return report.ToString();
    }

    private static double Cpu(Usage usage, string service) => usage.ServiceCpuSeconds.GetValueOrDefault(service) * 1e6;

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
