using System.Diagnostics;
using ShopReference.DashboardTour;
using ShopReference.Testing.Dashboard;
using ShopReference.Testing;

// The dashboard tour (docs/dashboard.md): boots the app with its dashboard, sends one traced request, starts the shoppers, runs every other dashboard command, and captures what a user sees into the folder given (docs/images).
//   dotnet run --project tools/DashboardTour -- docs/images
var output = Path.GetFullPath(args.FirstOrDefault() ?? Path.Combine("docs", "images"));
Directory.CreateDirectory(output);
if (!DashboardBrowser.ChromiumInstalled)
{
    Console.Error.WriteLine($"No Chromium at {DashboardBrowser.ChromiumPath}: apt-get install chromium (or set SHOPREF_CHROMIUM).");
    return 2;
}

using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(15));
Console.WriteLine("Starting the app with its dashboard …");
await using var shop = await ShopApp.StartAsync(stop.Token, dashboard: true);
Console.WriteLine($"Dashboard: {shop.DashboardUrl}");
await using var browser = await DashboardBrowser.OpenAsync(shop.DashboardUrl);
var resources = new ResourcesPage(browser.Page);
var tour = new Tour(browser.Page, output);

await resources.OpenAsync();
await resources.WaitUntilAllHealthyAsync(TimeSpan.FromMinutes(2));
await tour.CaptureAsync("dashboard-resources");
var catalogReplica = await resources.ReplicaAsync("catalog");

// One product read through the gateway that misses the cache: gateway → catalog → Valkey → PostgreSQL, one trace.
var traceId = ActivityTraceId.CreateRandom().ToHexString();
using (var gateway = shop.GatewayAsNewClient(out _))
using (var read = new HttpRequestMessage(HttpMethod.Get, "/api/catalog/products/777"))
{
    read.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom().ToHexString()}-01");
    using var response = await gateway.SendAsync(read, stop.Token);
    response.EnsureSuccessStatusCode();
}

await resources.StartResourceAsync(DashboardCommands.Shoppers, TimeSpan.FromMinutes(2));
foreach (var (resource, command, inputs) in DashboardCommands.Tour)
{
    var outcome = await resources.RunAsync(resource, command, inputs);
    Console.WriteLine($"{resource}: {outcome.Title}: {outcome.Message}");
    await tour.CaptureAsync($"command-{DashboardCommands.FileName(command)}");
    await resources.CloseNotificationsAsync();
}

await tour.TraceAsync(traceId, "dashboard-trace");
// The shoppers have had the commands' time to move the meters; let them run a little more for the graphs.
await tour.MetricsAsync(catalogReplica, "ShopReference.Catalog", "shopreference.catalog.cache.hits", "dashboard-metrics-catalog");
await tour.MetricsAsync("rate-limit", "ShopReference.RateLimit", "shopreference.ratelimit.decisions", "dashboard-metrics-ratelimit");
Console.WriteLine($"Images in {output}");
return 0;
