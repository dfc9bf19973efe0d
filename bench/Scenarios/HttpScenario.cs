using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Hosting;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ShopReference.Bench.Harness;
using Npgsql;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.Bench.Scenarios;

/// <summary>
/// A cached product read over HTTP, the whole app running (Local mode): sent straight to a catalog replica's own port
/// (baseline), to the catalog through the orchestrator's proxy, to the gateway's own port, and through the gateway's
/// proxied port as a user sends it. The four paths separate what the gateway costs (its rate-limit decision, one
/// Valkey round trip, and the YARP hop) from what the orchestrator's proxy costs. The gateway's limits are raised
/// for the run (<see cref="BenchApp"/>), so every request is admitted and still decided.
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
        await using var shop = await BenchApp.StartAsync();
        var (meter, idlePerSecond, disposables) = await MeterAsync(shop, options);
        var bareHopAddress = new Uri($"http://127.0.0.1:{BareHopPort}");
        await using var valkey = disposables.Valkey;
        await using var postgres = disposables.Postgres;
        var replicas = await shop.ReplicaAddressesAsync("catalog", 2, TimeSpan.FromSeconds(60));
        var replica = replicas[0];
        using var bareHop = await StartBareHopAsync(replicas, meter);
        var gatewayOwn = (await shop.ReplicaAddressesAsync("rate-limit", 1, TimeSpan.FromSeconds(60)))[0];
        // What the gateway adds to a forwarded request: a signed client context, which makes the read a visitor's view.
        var clientContext = BenchApp.ClientContext(shop, "bench");
        var targets = new (string Contender, Uri Address, string Path, string? ClientContext)[]
        {
            (Baseline, replica, Path, null),
            // The catalog's share of the gateway path: the context checked, a view event appended (and applied by analytics).
            ("catalog replica, its own port, with a client context (a view)", replica, Path, clientContext),
            ("catalog through the orchestrator's proxy", shop.App.GetEndpoint("catalog", "http"), Path, null),
            // The anchor: a YARP app with one route to the same replicas and nothing else (no limiter, no client context, so
            // not a view). The gateway's distance from it is what the gateway's own work costs.
            (BareHopContender, bareHopAddress, Path, null),
            ("gateway, its own port", gatewayOwn, Path, null),
            ("gateway through the orchestrator's proxy (as users call it)", shop.App.GetEndpoint("rate-limit", "http"), Path, null),
            // The gateway answering itself (its limiter decides, nothing is forwarded): its own cost without YARP and the catalog.
            ("gateway's own route /api/ratelimit/policies, its own port", gatewayOwn, "/api/ratelimit/policies", null),
            // A forwarded read that is not a visitor's product view (no event, so no analytics work behind it): a page of
            // the list, output-cached in Valkey, straight and through the gateway.
            ("list page, catalog replica's own port", replica, ListPath, null),
            // The client context checked on a read that is not a view: what the signature check alone costs.
            ("list page, catalog replica's own port, with a client context", replica, ListPath, clientContext),
            ("list page, bare YARP hop", bareHopAddress, ListPath, null),
            ("list page, gateway's own port", gatewayOwn, ListPath, null),
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
                    using var request = new HttpRequestMessage(HttpMethod.Get, t.Path);
                    if (t.ClientContext is not null) request.Headers.Add(ShopAuthentication.ClientContextHeader, t.ClientContext);
                    using var response = await clients[i].SendAsync(request, HttpCompletionOption.ResponseContentRead);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        throw new InvalidOperationException($"{t.Contender}: {(int)response.StatusCode}");
                    }
                }))).Where(c => options.Only is null || c.Contender == Baseline || c.Contender.Contains(options.Only, StringComparison.OrdinalIgnoreCase)).ToList();
                measurements.AddRange(await LoadRunner.MeasureInterleavedAsync(contenders, concurrency, options.Warmup, options.Duration, meter: meter.ReadAsync));
            }
            finally
            {
                clients.ForEach(c => c.Dispose());
            }
        }
        return MarkdownReport.Render($"HTTP: GET {Path} (cached, served from the replica's near cache), 2 catalog replicas, 1 gateway", Baseline, measurements)
            + MarkdownReport.RenderCpu(measurements, idlePerSecond, Parts);
    }

    private const string BareHopContender = "bare YARP hop (one route, nothing else) to the same replicas";
    private const string BareHopPart = "bare hop";
    private static readonly int BareHopPort = ShopReference.Hosting.LocalPorts.NextFree();

    // The hop in a process of its own (as the gateway is), metered like a service, and ready once it forwards a read.
    private static async Task<ProcessLease> StartBareHopAsync(IReadOnlyList<Uri> replicas, ResourceMeter meter)
    {
        var process = BareHop.Start(BareHopPort, replicas);
        var lease = new ProcessLease(process);
        meter.Track(BareHopPart, process.Id);
        using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{BareHopPort}"), Timeout = TimeSpan.FromSeconds(2) };
        await Eventually.UntilAsync(async () =>
        {
            if (process.HasExited) throw new InvalidOperationException($"the bare hop exited with {process.ExitCode}");
            try
            {
                using var response = await probe.GetAsync(Path);
                return response.StatusCode == HttpStatusCode.OK;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return false; // not listening yet
            }
        }, TimeSpan.FromSeconds(60), "the bare hop forwarded a read", poll: TimeSpan.FromMilliseconds(200));
        return lease;
    }

    private sealed class ProcessLease(Process process) : IDisposable
    {
        public void Dispose()
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
            process.Dispose();
        }
    }

    // The parts whose CPU each request is charged with: the load generator (this process, which also hosts the AppHost)
    // and every service's replicas; Valkey and PostgreSQL come from their own counters.
    private const string LoadGenerator = "load generator";
    private static readonly string[] Services = ["rate-limit", "catalog", "analytics", "cart-session"];
    private static readonly string[] Parts = [LoadGenerator, BareHopPart, .. Services];

    private static async Task<(ResourceMeter Meter, Usage IdlePerSecond, (ConnectionMultiplexer Valkey, NpgsqlDataSource Postgres) Disposables)> MeterAsync(
        ShopApp shop, BenchOptions options)
    {
        var (meter, valkey, postgres) = await ResourceMeter.ForAppAsync(shop, Services, LoadGenerator);
        // The idle app's background work (polls, health checks, the change feed's keep-alive), taken off every contender.
        var idle = Stopwatch.StartNew();
        var before = await meter.ReadAsync();
        await Task.Delay(options.Warmup + TimeSpan.FromSeconds(5));
        var idlePerSecond = (await meter.ReadAsync()).Minus(before).Times(1 / idle.Elapsed.TotalSeconds);
        return (meter, idlePerSecond, (valkey, postgres));
    }
}
