using System.Globalization;
using ShopReference.Bench.Scenarios;
using ShopReference.Testing;

#pragma warning disable CA1416 // the chaos scenario runs on Unix only, like the whole harness
IScenario[] scenarios = [new RoundTripScenario(), new RateLimitScenario(), new CatalogReadScenario(), new StampedeScenario(), new CdcLagScenario(), new CartScenario(), new AnalyticsScenario(), new ChaosScenario(), new NearCacheScenario(), new HttpScenario(), new TopologyScenario(), new CapacityScenario()];
#pragma warning restore CA1416

var name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal));
if (name == ShopReference.Bench.Harness.BareHop.Name)
{
    return await ShopReference.Bench.Harness.BareHop.RunAsync(args); // a child of the http scenario: the gateway's anchor
}
var scenario = scenarios.FirstOrDefault(s => s.Name == name);
if (scenario is null)
{
    Console.Error.WriteLine("usage: dotnet run -c Release --project bench -- <scenario> [--seconds N] [--warmup N] [--concurrency 1,16] [--only NAME]");
    foreach (var s in scenarios)
    {
        Console.Error.WriteLine($"  {s.Name,-12} {s.Description}");
    }
    return 2;
}

var options = new BenchOptions(
    Warmup: TimeSpan.FromSeconds(Option("--warmup", 2)),
    Duration: TimeSpan.FromSeconds(Option("--seconds", 10)),
    ConcurrencyLevels: (OptionText("--concurrency") ?? "1,16").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray(),
    Only: OptionText("--only"));

await using var servers = await TestServers.StartAsync();
Console.WriteLine($"<!-- {DateTime.UtcNow:yyyy-MM-dd} {Environment.ProcessorCount} cores, {Path.GetFileName(ShopReference.Hosting.ServerBinaries.FindValkeyServer())}, PostgreSQL from {ShopReference.Hosting.ServerBinaries.FindPostgresBinDirectory()} -->");
Console.WriteLine(await scenario.RunAsync(servers, options));
return 0;

double Option(string flag, double fallback) =>
    OptionText(flag) is { } text ? double.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? OptionText(string flag)
{
    var index = Array.IndexOf(args, flag);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}
