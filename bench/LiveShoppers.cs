using System.Globalization;
using ShopReference.Shoppers;

namespace ShopReference.Bench;

/// <summary>
/// <c>dotnet run --project bench -- shoppers --gateway http://localhost:5000 --key K [--shoppers 24] [--seconds 60]
/// [--admin-key A]</c>: the dashboard's <em>Simulate shoppers</em> from a console, against an app that runs already
/// (no servers of its own). <c>K</c> is the <c>dashboard-shoppers</c> client's key: the <c>shoppers-key</c>
/// parameter; <c>A</c>, the <c>catalog-admin-key</c>, adds the price changes. Without the
/// catalog's operator route it leaves out the hot-key expiries; Ctrl+C stops it early.
/// </summary>
public static class LiveShoppers
{
    public const string Name = "shoppers";

    public static async Task<int> RunAsync(Func<string, string?> option)
    {
        if (option("--gateway") is not { } gateway || option("--key") is not { } key)
        {
            Console.Error.WriteLine("usage: dotnet run --project bench -- shoppers --gateway http://localhost:5000 --key <shoppers-key> [--shoppers 24] [--seconds 60] [--admin-key <catalog-admin-key>]");
            return 2;
        }
        var simulation = new ShopperSimulation(new SimulationOptions
        {
            Gateway = new Uri(gateway),
            ShopperKey = key,
            CatalogAdminKey = option("--admin-key"),
            Shoppers = int.Parse(option("--shoppers") ?? "24", CultureInfo.InvariantCulture),
            Duration = TimeSpan.FromSeconds(double.Parse(option("--seconds") ?? "60", CultureInfo.InvariantCulture)),
            ThinkTime = TimeSpan.FromMilliseconds(700), // inside each shopper's anonymous read quota, as the dashboard's run
        });
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        var final = await simulation.RunAsync(progress => Console.WriteLine(progress), stop.Token);
        Console.WriteLine($"finished: {final}");
        foreach (var error in simulation.Errors) Console.WriteLine($"server error: {error}");
        return 0;
    }
}
