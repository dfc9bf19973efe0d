using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Hosting;
using ShopReference.Testing;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

namespace ShopReference.Bench.Harness;

/// <summary>
/// The whole app (Local mode) for an HTTP benchmark: every gateway policy of services/RateLimit/appsettings.json raised to
/// a million a window, so every request is still decided but never refused; with SHOPREF_BENCH_TELEMETRY=off no service
/// records or exports telemetry (what observability costs per request is then the difference to a run with it), and
/// SHOPREF_BENCH_SETTING=name=value;name=value gives every service those settings (an A/B pair of runs).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // the app runs its servers as Unix processes
public static class BenchApp
{
    // checkout, write, partner-read, anon-read, default: the policies' order in the gateway's appsettings.json.
    private const int Policies = 5;

    public static Task<ShopApp> StartAsync() => ShopApp.StartAsync(CancellationToken.None, configure: builder =>
    {
        var gateway = builder.CreateResourceBuilder<ProjectResource>("rate-limit");
        for (var policy = 0; policy < Policies; policy++)
        {
            gateway.WithEnvironment($"RateLimiting__Policies__{policy}__Limit", "1000000");
        }
        foreach (var project in builder.Resources.OfType<ProjectResource>())
        {
            var service = builder.CreateResourceBuilder(project);
            if (Environment.GetEnvironmentVariable("SHOPREF_BENCH_TELEMETRY") == "off")
            {
                service.WithEnvironment("OTEL_SDK_DISABLED", "true");
            }
            // Settings to compare against their defaults in an A/B pair of runs, ';' between them:
            // SHOPREF_BENCH_SETTING=Analytics__Consumer__FillWait=00:00:00;DOTNET_TieredPGO=0
            foreach (var setting in (Environment.GetEnvironmentVariable("SHOPREF_BENCH_SETTING") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                if (setting.Split('=', 2) is [var name, var value])
                {
                    service.WithEnvironment(name, value);
                }
            }
        }
    });

    /// <summary>
    /// The signed client context the gateway adds to a request it forwards, minted with the run's signing key: sent
    /// straight to a replica, it makes a product read a visitor's view without the gateway's hop.
    /// </summary>
    public static string ClientContext(ShopApp shop, string visitor) =>
        Forgery.Token(shop.SigningKey, ShopAuthentication.ClientContextAudience,
            (ShopAuthentication.VisitorClaim, ShopReference.Valkey.KeySchema.Sha256Hex(visitor)[..24]), (ShopAuthentication.SchemeClaim, "http"));

    /// <summary>The analytics consumer group has read and acknowledged every event in the stream.</summary>
    public static async Task<bool> AnalyticsDrainedAsync(IConnectionMultiplexer valkey)
    {
        var group = (await valkey.GetDatabase().StreamGroupInfoAsync(EventStream.Key)).Single(g => g.Name == EventStream.ConsumerGroup);
        return group.Lag == 0 && group.PendingMessageCount == 0;
    }
}
