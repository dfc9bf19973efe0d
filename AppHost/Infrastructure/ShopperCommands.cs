using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using ShopReference.Shoppers;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard commands on the gateway that make the patterns move without a curl: <em>Simulate shoppers</em> starts
/// simulated shoppers for a chosen time (they browse with Zipf popularity, add to carts, check out; an administrator
/// changes a price; every 15 s the hottest product expires while 24 of them want it, and one bursts past its read quota),
/// and <em>Stop shoppers</em> ends them early. They go through the gateway with real credentials: the client
/// <c>dashboard-shoppers</c> (permission <c>shoppers</c>) speaks for each shopper with <c>X-Shopper</c>, so each has
/// its own anonymous quotas and visitor id; price changes use a <c>catalog-admin</c> token, expiries an operator's.
/// Progress is written every 5 s to the gateway's console log and to its <c>Shoppers</c> property.
/// </summary>
public static class ShopperCommands
{
    public const string ProgressProperty = "Shoppers";
    private const int DefaultShoppers = 24;
    private const int DefaultSeconds = 60;
    private const int MaxSeconds = 3600;

    public static IResourceBuilder<ProjectResource> WithShopperSimulation(
        this IResourceBuilder<ProjectResource> gateway, IResourceBuilder<ProjectResource> catalog, ShopAuth auth)
    {
        if (!gateway.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return gateway;
        }
        var current = new Run();
        gateway.WithCommand("simulate-shoppers", "Simulate shoppers", async context =>
        {
            var shoppers = Number(context.Arguments, "shoppers", DefaultShoppers);
            var seconds = Number(context.Arguments, "seconds", DefaultSeconds);
            if (shoppers is < 1 or > ShopperSimulation.MaxKeyedShoppers || seconds is < 1 or > MaxSeconds)
            {
                return CommandResults.Failure($"Shoppers: 1 to {ShopperSimulation.MaxKeyedShoppers}; seconds: 1 to {MaxSeconds}.");
            }
            var simulation = new ShopperSimulation(new SimulationOptions
            {
                Gateway = new Uri(gateway.GetEndpoint("http").Url),
                Shoppers = shoppers,
                Duration = TimeSpan.FromSeconds(seconds),
                ShopperKey = await auth.ShoppersKey.GetValueAsync(context.CancellationToken) ?? "",
                CatalogAdminKey = await auth.CatalogAdminKey.GetValueAsync(context.CancellationToken),
                ExpireProduct = async (product, ct) => await CatalogCommands.EvictAsync(catalog, gateway, auth, product, ct),
                // A person reads a page in about a second: each shopper stays inside the anonymous read quota (100 a
                // minute) until it bursts, so the 429s in the result are the bursts', not the simulation's pace.
                ThinkTime = TimeSpan.FromMilliseconds(700),
            });
            if (!current.TryStart(out var stop))
            {
                return CommandResults.Failure("Shoppers are already shopping: stop them first (Stop shoppers).");
            }
            var services = context.Services;
            var instance = context.ResourceName; // the gateway's instance the command ran on
            var log = services.GetRequiredService<ResourceLoggerService>().GetLogger(gateway.Resource);
            _ = Task.Run(async () =>
            {
                try
                {
                    await ShowAsync(services, gateway.Resource, instance, $"started: {shoppers} shoppers for {seconds} s");
                    var final = await simulation.RunAsync(progress =>
                    {
                        log.LogInformation("Shoppers: {Progress}", progress);
                        _ = ShowAsync(services, gateway.Resource, instance, progress.ToString());
                    }, stop.Token);
                    var summary = $"finished: {final}";
                    log.LogInformation("Shoppers {Summary}", summary);
                    foreach (var error in simulation.Errors) log.LogWarning("Shoppers saw a server error: {Error}", error);
                    await ShowAsync(services, gateway.Resource, instance, summary);
                }
                catch (Exception ex)
                {
                    log.LogError(ex, "The shopper simulation failed.");
                    await ShowAsync(services, gateway.Resource, instance, $"failed: {ex.Message}");
                }
                finally
                {
                    current.Finish();
                }
            });
            return CommandResults.Success($"{shoppers} shoppers started for {seconds} s. Progress every 5 s in rate-limit's console log and its " +
                $"'{ProgressProperty}' property; watch the meters ShopReference.*, the leaderboards and the traces move.");
        }, new CommandOptions
        {
            Description = "Simulated shoppers through the gateway: browsing (Zipf), carts, checkouts, bursts past a limit, price changes, " +
                "hot-key expiries. Off until started.",
            IconName = "PeopleCommunity",
            IsHighlighted = true,
            Arguments =
            [
                new InteractionInput { Name = "shoppers", Label = "Shoppers", InputType = InputType.Number, Value = DefaultShoppers.ToString(CultureInfo.InvariantCulture), Required = true,
                    Description = $"1 to {ShopperSimulation.MaxKeyedShoppers}; each is a visitor with its own quotas." },
                new InteractionInput { Name = "seconds", Label = "Seconds", InputType = InputType.Number, Value = DefaultSeconds.ToString(CultureInfo.InvariantCulture), Required = true,
                    Description = $"How long they shop (1 to {MaxSeconds})." },
            ],
            UpdateState = context => !current.IsRunning && context.ResourceSnapshot.HealthStatus == HealthStatus.Healthy
                ? ResourceCommandState.Enabled : ResourceCommandState.Disabled,
        });
        gateway.WithCommand("stop-shoppers", "Stop shoppers", _ => Task.FromResult(current.Stop()
            ? CommandResults.Success("Stopping the shoppers; the summary follows in the console log and the Shoppers property.")
            : CommandResults.Failure("No shoppers are shopping.")), new CommandOptions
        {
            Description = "Ends a running shopper simulation now.",
            IconName = "Stop",
            UpdateState = _ => current.IsRunning ? ResourceCommandState.Enabled : ResourceCommandState.Disabled,
        });
        return gateway;
    }

    private static int Number(InteractionInputCollection? arguments, string name, int fallback)
    {
        var value = arguments?.FirstOrDefault(a => a.Name == name)?.Value;
        return string.IsNullOrWhiteSpace(value) ? fallback
            : int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) ? number : -1;
    }

    // The resource's "Shoppers" property (which also makes the dashboard re-evaluate which of the two commands is enabled).
    private static Task ShowAsync(IServiceProvider services, IResource gateway, string instance, string text) =>
        services.GetRequiredService<ResourceNotificationService>().PublishUpdateAsync(gateway, instance, snapshot => snapshot with
        {
            Properties = [.. snapshot.Properties.Where(p => p.Name != ProgressProperty), new ResourcePropertySnapshot(ProgressProperty, text) { IsHighlighted = true }],
        });

    /// <summary>At most one simulation at a time, and the switch that stops it.</summary>
    private sealed class Run
    {
        private CancellationTokenSource? _stop;

        public bool IsRunning => Volatile.Read(ref _stop) is not null;

        public bool TryStart(out CancellationTokenSource stop)
        {
            stop = new CancellationTokenSource();
            if (Interlocked.CompareExchange(ref _stop, stop, null) is null)
            {
                return true;
            }
            stop.Dispose();
            return false;
        }

        public bool Stop()
        {
            if (Volatile.Read(ref _stop) is not { } stop)
            {
                return false;
            }
            try
            {
                stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                return false; // it finished meanwhile
            }
            return true;
        }

        public void Finish() => Interlocked.Exchange(ref _stop, null)?.Dispose();
    }
}
