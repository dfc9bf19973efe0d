using System.Net;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ShopReference.Bench.Harness;
using ShopReference.Testing;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// A cached product read over HTTP, the whole app running (Local mode): sent straight to a catalog replica's own port
/// (baseline), to the catalog through the orchestrator's proxy, to the gateway's own port, and through the gateway's
/// proxied port as a user sends it. The four paths separate what the gateway costs (its rate-limit decision, one
/// Valkey round trip, and the YARP hop) from what the orchestrator's proxy costs. The gateway's read limits are raised
/// for the run, so every request is admitted and still decided.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // the app runs its servers as Unix processes
public sealed class HttpScenario : IScenario
{
    private const string Baseline = "catalog replica, its own port";
    private const string Path = "/api/catalog/products/7";
    private const string ListPath = "/api/catalog/products?page=1&pageSize=5";

    public string Name => "http";
    public string Description => "a cached product over HTTP: straight to a replica vs through the orchestrator's proxy and the gateway";

    public async Task<string> RunAsync(TestServers servers, BenchOptions options)
    {
        await using var shop = await ShopApp.StartAsync(CancellationToken.None, configure: builder =>
        {
            var gateway = builder.CreateResourceBuilder<ProjectResource>("rate-limit");
            // partner-read (2) and anon-read (3) of services/RateLimit/appsettings.json at their maximum, a million a minute: decided, never refused.
            gateway.WithEnvironment("RateLimiting__Policies__2__Limit", "1000000").WithEnvironment("RateLimiting__Policies__3__Limit", "1000000");
            if (Environment.GetEnvironmentVariable("SHOPREF_BENCH_TELEMETRY") == "off")
            {
                // The same run without any service recording or exporting telemetry: what observability costs per request.
                foreach (var project in builder.Resources.OfType<ProjectResource>())
                {
                    builder.CreateResourceBuilder(project).WithEnvironment("OTEL_SDK_DISABLED", "true");
                }
            }
        });
        var replica = (await shop.ReplicaAddressesAsync("catalog", 2, TimeSpan.FromSeconds(60)))[0];
        var gatewayOwn = (await shop.ReplicaAddressesAsync("rate-limit", 1, TimeSpan.FromSeconds(60)))[0];
        var targets = new (string Contender, Uri Address, string Path)[]
        {
            (Baseline, replica, Path),
            ("catalog through the orchestrator's proxy", shop.App.GetEndpoint("catalog", "http"), Path),
            ("gateway, its own port", gatewayOwn, Path),
            ("gateway through the orchestrator's proxy (as users call it)", shop.App.GetEndpoint("rate-limit", "http"), Path),
            // The gateway answering itself (its limiter decides, nothing is forwarded): its own cost without YARP and the catalog.
            ("gateway's own route /api/ratelimit/policies, its own port", gatewayOwn, "/api/ratelimit/policies"),
            // A forwarded read that is not a visitor's product view (no event, so no analytics work behind it): a page of
            // the list, output-cached in Valkey, straight and through the gateway.
            ("list page, catalog replica's own port", replica, ListPath),
            ("list page, gateway's own port", gatewayOwn, ListPath),
        };

        var measurements = new List<Measurement>();
        foreach (var concurrency in options.ConcurrencyLevels)
        {
            var clients = targets.Select(t => new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseCookies = false })
            {
                BaseAddress = t.Address,
            }).ToList();
            try
            {
                var contenders = targets.Select((t, i) => (t.Contender, (Func<ValueTask>)(async () =>
                {
                    using var response = await clients[i].GetAsync(t.Path, HttpCompletionOption.ResponseContentRead);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        throw new InvalidOperationException($"{t.Contender}: {(int)response.StatusCode}");
                    }
                }))).Where(c => options.Only is null || c.Contender == Baseline || c.Contender.Contains(options.Only, StringComparison.OrdinalIgnoreCase)).ToList();
                measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(contenders, concurrency, options.Warmup, options.Duration));
            }
            finally
            {
                clients.ForEach(c => c.Dispose());
            }
        }
        return MarkdownReport.Render($"HTTP: GET {Path} (cached, served from the replica's near cache), 2 catalog replicas, 1 gateway", Baseline, measurements);
    }
}
