using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ShopReference.Hosting;

namespace ShopReference.Testing;

/// <summary>
/// Starts the real AppHost in Local mode with randomised ports, passwords and data folder, so a test run never
/// collides with a live <c>dotnet run</c> or another test run, and waits until every resource is healthy.
/// </summary>
public sealed partial class ShopApp : IAsyncDisposable
{
    /// <summary>
    /// A start takes 20–60 s here; the second start of <c>AppLifetimeTests</c> on a cluster, while the library suite runs
    /// beside it on two cores, has taken over 3 minutes (its gateway turned healthy just after a 3-minute limit).
    /// </summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(6);

    /// <summary>Every resource the AppHost declares; the tests expect each to become healthy.</summary>
    public static readonly string[] Resources =
        ["valkey", "postgres", "catalogdb", "cartdb", "analyticsdb", "catalog", "cart-session", "analytics", "rate-limit"];

    /// <summary>The run-once worker that provisions PostgreSQL's roles and databases, then exits.</summary>
    public const string ProvisioningResource = "postgres-setup";

    /// <summary>The simulated shoppers, which wait for an explicit start.</summary>
    public const string ShoppersResource = "shoppers";

    /// <summary>How long the catalog replicas keep a near-cache copy in the test app: longer than any test waits.</summary>
    public static readonly TimeSpan NearCacheTimeToLive = TimeSpan.FromMinutes(30);

    private ShopApp(DistributedApplication app, string dataDirectory, string valkeyPassword, string postgresPassword)
    {
        App = app;
        DataDirectory = dataDirectory;
        ValkeyPassword = valkeyPassword;
        PostgresPassword = postgresPassword;
    }

    public DistributedApplication App { get; }
    public string DataDirectory { get; }
    public string ValkeyPassword { get; }
    public string PostgresPassword { get; }

    /// <summary>What the services exported (OTLP): the spans a user would find on the dashboard's Traces page.</summary>
    public OtlpReceiver Telemetry { get; private init; } = null!;

    /// <summary>
    /// Where the dashboard answers, when the app was started with one: the address the orchestrator's proxy gives its
    /// front end (the testing builder moves every proxied port, the dashboard's too, off the configured one).
    /// </summary>
    public Uri DashboardUrl =>
        App.ResourceNotifications.TryGetCurrentState("aspire-dashboard", out var dashboard) &&
        dashboard.Snapshot.EnvironmentVariables.FirstOrDefault(e => e.Name == "DASHBOARD__FRONTEND__PUBLICURL")?.Value is { Length: > 0 } url
            ? new Uri(url)
            : throw new InvalidOperationException("The app runs no dashboard (StartAsync with dashboard: true), or it has not started yet.");

    /// <summary>Where the (first) Valkey node keeps its data in a data folder: a cluster's nodes keep theirs apart from the single server's.</summary>
    public static string ValkeyDataDirectory(string dataDirectory, ValkeyTopology topology) =>
        topology == ValkeyTopology.Cluster ? Path.Combine(dataDirectory, "valkey-cluster", "valkey") : Path.Combine(dataDirectory, "valkey");

    /// <summary>The API key of the gateway's demo client (the one the dashboard's burst command uses).</summary>
    public string DemoApiKey { get; private init; } = "";

    /// <summary>The keys of the stampede command's client and of the shopper simulation's (each its own, none derived).</summary>
    public string StampedeKey { get; private init; } = "";
    public string ShoppersKey { get; private init; } = "";

    /// <summary>The keys of the clients with permissions, and the token signing key (to forge tokens it did not issue).</summary>
    public string OperatorKey { get; private init; } = "";
    public string CatalogAdminKey { get; private init; } = "";
    public string SigningKey { get; private init; } = "";

    /// <summary>
    /// The gateway believes <c>X-Forwarded-For</c> from loopback in the test app, so a test can speak as a client address of
    /// its own (its quota, its failed-credential count) without touching the others'. Both loopback addresses: where the
    /// hosts file lists <c>::1 localhost</c> first (Debian's and Ubuntu's default), the tests reach the gateway over IPv6.
    /// </summary>
    public static readonly string[] TrustedProxies = ["127.0.0.1", "::1"];

    /// <param name="dataDirectory">An existing data folder to run on again; null for a fresh one.</param>
    /// <param name="untilHealthy">Wait until every resource is healthy (false: return once the orchestrator has the app, for a test of a start that fails).</param>
    /// <param name="configure">Changes to the app model before it is built (a benchmark raises the gateway's limits).</param>
    /// <param name="dashboard">
    /// Run the Aspire dashboard too, on free ports and without a login, as <c>dotnet run</c> does (the browser test and the
    /// screenshots). The services' telemetry then goes to the dashboard, not to <see cref="Telemetry"/>.
    /// </param>
    /// <param name="topology">The Valkey topology; by default the one the run asks for (<see cref="TestValkey.RequestedTopology"/>).</param>
    /// <param name="passwords">The administrators' passwords (a Containers-mode restart keeps them); by default new ones.</param>
    public static async Task<ShopApp> StartAsync(CancellationToken cancellationToken, string? dataDirectory = null, bool untilHealthy = true,
        Action<IDistributedApplicationTestingBuilder>? configure = null, bool dashboard = false, ValkeyTopology? topology = null,
        (string Valkey, string Postgres)? passwords = null)
    {
        if (dataDirectory is null)
        {
            dataDirectory = Directory.CreateTempSubdirectory("shopref-e2e-").FullName;
            File.SetUnixFileMode(dataDirectory, (UnixFileMode)Convert.ToInt32("755", 8)); // 'postgres' must reach its folder
        }
        var valkeyPassword = passwords?.Valkey ?? Secrets.NewPassword();
        var postgresPassword = passwords?.Postgres ?? Secrets.NewPassword();
        var demoApiKey = Secrets.NewPassword(32);
        var stampedeKey = Secrets.NewPassword(32);
        var shoppersKey = Secrets.NewPassword(32);
        var operatorKey = Secrets.NewPassword(32);
        var catalogAdminKey = Secrets.NewPassword(32);
        var signingKey = Secrets.NewPassword(64);

        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ShopReference_AppHost>(
        [
            .. InfrastructureArguments(dataDirectory),
            "--Ports:Gateway=0",
            "--Ports:Valkey=0",
            "--Ports:Postgres=0",
            $"--Parameters:valkey-password={valkeyPassword}",
            $"--Parameters:postgres-password={postgresPassword}",
            $"--Parameters:ratelimit-demo-key={demoApiKey}",
            $"--Parameters:ratelimit-stampede-key={stampedeKey}",
            $"--Parameters:shoppers-key={shoppersKey}",
            $"--Parameters:operator-key={operatorKey}",
            $"--Parameters:catalog-admin-key={catalogAdminKey}",
            $"--Parameters:auth-signing-key={signingKey}",
            .. TrustedProxies.Select((proxy, i) => $"--Gateway:TrustedProxies:{i}={proxy}"),
            // The same switch as the library tests': SHOPREF_VALKEY_TOPOLOGY=Cluster runs the whole app on a cluster.
            $"--Infrastructure:Valkey:Topology={topology ?? TestValkey.RequestedTopology}",
            .. dashboard ? DashboardArguments : [],
        ], (options, _) => options.DisableDashboard = !dashboard, cancellationToken);
        // Near-cache copies outlive every test: a replica that serves a change did so because it was told, not because its copy aged out.
        builder.CreateResourceBuilder<ProjectResource>("catalog").WithEnvironment("Catalog__NearCache__TimeToLive", NearCacheTimeToLive.ToString("c"));
        // Without a dashboard, the services' telemetry comes here, as it would reach the dashboard, so a test counts what a
        // user would see.
        var telemetry = new OtlpReceiver();
        var projectsToRedirect = dashboard ? [] : builder.Resources.OfType<ProjectResource>().ToList();
        foreach (var project in projectsToRedirect)
        {
            builder.CreateResourceBuilder(project)
                .WithEnvironment("OTEL_EXPORTER_OTLP_ENDPOINT", telemetry.Endpoint.ToString())
                .WithEnvironment("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                .WithEnvironment("OTEL_BSP_SCHEDULE_DELAY", "1000")
                .WithEnvironment("OTEL_METRIC_EXPORT_INTERVAL", "5000");
        }
        configure?.Invoke(builder);
        builder.Services.AddLogging(logging => logging
            .SetMinimumLevel(LogLevel.Warning)
            .AddFilter("ShopReference.AppHost.Resources", LogLevel.Warning) // each service's own console output
            .AddFilter("Aspire.Hosting", LogLevel.Warning)
            .AddFilter("System.Net.Http", LogLevel.Warning)
            // Probes fail by design until a server answers; their stack traces would bury a real failure.
            .AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.None)
            .AddFilter("Polly", LogLevel.Error));

        var app = await builder.BuildAsync(cancellationToken);
        var shop = new ShopApp(app, dataDirectory, valkeyPassword, postgresPassword)
        {
            Telemetry = telemetry,
            DemoApiKey = demoApiKey, StampedeKey = stampedeKey, ShoppersKey = shoppersKey, OperatorKey = operatorKey, CatalogAdminKey = catalogAdminKey, SigningKey = signingKey,
        };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(StartTimeout);
            if (!untilHealthy)
            {
                // The orchestrator's start does not end while a resource waits on one that never becomes healthy.
                shop._starting = app.StartAsync(cancellationToken);
                return shop;
            }
            await StartUntilHealthyAsync(app, timeout.Token);
            return shop;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            var report = await StartReportAsync(app);
            await shop.DisposeAsync();
            throw new TimeoutException($"The app was not healthy within {StartTimeout.TotalMinutes:0} min: {report}");
        }
        catch
        {
            await shop.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The backend the run asks for: <c>SHOPREF_INFRASTRUCTURE_MODE=Containers</c> runs Valkey and PostgreSQL as containers
    /// (the images named by <c>SHOPREF_VALKEY_IMAGE</c> and <c>SHOPREF_POSTGRES_IMAGE</c>, local stand-ins where no registry
    /// is reachable: tests/ContainerImages); anything else, Local mode.
    /// </summary>
    public static bool InContainers =>
        string.Equals(Environment.GetEnvironmentVariable("SHOPREF_INFRASTRUCTURE_MODE"), "Containers", StringComparison.OrdinalIgnoreCase);

    // In Containers mode the data folder's name names the volumes, so each app has volumes of its own.
    private static string[] InfrastructureArguments(string dataDirectory) => InContainers
        ?
        [
            "--Infrastructure:Mode=Containers",
            $"--Infrastructure:DataDirectory={dataDirectory}", // a cluster's node ports are kept there
            $"--Infrastructure:VolumePrefix={Path.GetFileName(dataDirectory)}",
            .. Environment.GetEnvironmentVariable("SHOPREF_VALKEY_IMAGE") is { Length: > 0 } valkey ? [$"--Infrastructure:Valkey:Image={valkey}"] : Array.Empty<string>(),
            .. Environment.GetEnvironmentVariable("SHOPREF_POSTGRES_IMAGE") is { Length: > 0 } postgres ? [$"--Infrastructure:Postgres:Image={postgres}"] : Array.Empty<string>(),
        ]
        : ["--Infrastructure:Mode=Local", $"--Infrastructure:DataDirectory={dataDirectory}"];

    // What the AppHost's launch profile sets for `dotnet run`, on free ports: the testing builder reads no launch profile.
    private static string[] DashboardArguments =>
    [
        $"--ASPNETCORE_URLS=http://localhost:{LocalPorts.NextFree()}",
        "--ASPIRE_ALLOW_UNSECURED_TRANSPORT=true",
        "--ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS=true",
        $"--ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://localhost:{LocalPorts.NextFree()}",
        $"--ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL=http://localhost:{LocalPorts.NextFree()}",
    ];

    /// <summary>
    /// Waits until <paramref name="count"/> instances (replicas) of <paramref name="resource"/> report Healthy and returns
    /// their orchestrator ids; a replicated project has one id per replica (catalog-abc12, catalog-def34).
    /// </summary>
    public async Task<IReadOnlyCollection<string>> WaitForHealthyInstancesAsync(string resource, int count, TimeSpan timeout) =>
        (await HealthyInstancesAsync(resource, count, timeout)).Keys;

    /// <summary>
    /// The address of each of <paramref name="count"/> healthy replicas of a project, past the orchestrator's proxy
    /// (which does not promise to spread a client's connections): each replica's own <c>ASPNETCORE_URLS</c>.
    /// </summary>
    public async Task<IReadOnlyList<Uri>> ReplicaAddressesAsync(string resource, int count, TimeSpan timeout) =>
        [.. (await HealthyInstancesAsync(resource, count, timeout)).Values.Select(snapshot =>
            new Uri(snapshot.EnvironmentVariables.Single(e => e.Name == "ASPNETCORE_URLS").Value!.Split(';')[0]))];

    private async Task<Dictionary<string, CustomResourceSnapshot>> HealthyInstancesAsync(string resource, int count, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var healthy = new Dictionary<string, CustomResourceSnapshot>(StringComparer.Ordinal);
        var seen = new Dictionary<string, CustomResourceSnapshot>(StringComparer.Ordinal);
        try
        {
            await foreach (var update in App.ResourceNotifications.WatchAsync(deadline.Token))
            {
                if (update.Resource.Name != resource)
                {
                    continue;
                }
                seen[update.ResourceId] = update.Snapshot;
                if (update.Snapshot.HealthStatus == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy)
                {
                    healthy[update.ResourceId] = update.Snapshot;
                }
                else
                {
                    healthy.Remove(update.ResourceId);
                }
                if (healthy.Count >= count)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            // Say which replica is not healthy, how, and what it last wrote.
            var reports = new List<string>();
            foreach (var (id, snapshot) in seen.Where(s => !healthy.ContainsKey(s.Key)))
            {
                var checks = string.Join(" ", snapshot.HealthReports.Where(r => r.Status != Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy)
                    .Select(r => $"[{r.Name}: {r.Description ?? r.ExceptionText}]"));
                reports.Add($"{id}: {snapshot.State?.Text} {snapshot.HealthStatus} {checks}\n{await RecentLogAsync(App, id, 30)}");
            }
            throw new TimeoutException($"{healthy.Count} of {count} replicas of {resource} healthy within {timeout.TotalSeconds:0} s.\n{string.Join("\n", reports)}");
        }
        return healthy;
    }

    /// <summary>An access token from the gateway's token endpoint, as any client gets one (OAuth client credentials).</summary>
    public async Task<string> TokenAsync(string client, CancellationToken cancellationToken)
    {
        var key = client switch
        {
            "operator" => OperatorKey,
            "catalog-admin" => CatalogAdminKey,
            "dashboard" => DemoApiKey,
            "dashboard-stampede" => StampedeKey, // a partner without permissions whose quota no test counts
            _ => throw new ArgumentException($"No key for client '{client}'.", nameof(client)),
        };
        using var gateway = App.CreateHttpClient("rate-limit");
        return (await ShopReference.Shoppers.ShopClient.TokenAsync(gateway, client, key, cancellationToken)).Value;
    }

    /// <summary>A client to <paramref name="resource"/> that sends <paramref name="client"/>'s bearer token.</summary>
    public async Task<HttpClient> ClientAsAsync(string resource, string client, CancellationToken cancellationToken)
    {
        var http = App.CreateHttpClient(resource);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await TokenAsync(client, cancellationToken));
        return http;
    }

    private static int _nextAddress;

    /// <summary>
    /// A client to the gateway that speaks as a client address of its own (forwarded from the trusted loopback proxy),
    /// without a cookie jar: its quotas and credential failures are its own.
    /// </summary>
    public HttpClient GatewayAsNewClient(out string address)
    {
        var n = Interlocked.Increment(ref _nextAddress);
        address = $"198.18.{n / 250}.{1 + n % 250}"; // the benchmarking range (RFC 2544): never a real client
        var http = new HttpClient(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = App.GetEndpoint("rate-limit", "http") };
        http.DefaultRequestHeaders.Add("X-Forwarded-For", address);
        return http;
    }

    /// <summary>The value a resource's process was given for an environment variable (what the service really received).</summary>
    /// <summary>Every environment variable the orchestrator gave one healthy instance of <paramref name="resource"/>: its whole configuration from outside.</summary>
    public async Task<IReadOnlyDictionary<string, string>> EnvironmentOfAsync(string resource) =>
        (await HealthyInstancesAsync(resource, 1, TimeSpan.FromSeconds(30))).Values.First()
            .EnvironmentVariables.Where(e => e.Value is not null).ToDictionary(e => e.Name, e => e.Value!, StringComparer.Ordinal);

    public async Task<string> EnvironmentOfAsync(string resource, string variable) =>
        (await HealthyInstancesAsync(resource, 1, TimeSpan.FromSeconds(30))).Values.First()
            .EnvironmentVariables.FirstOrDefault(e => e.Name == variable)?.Value
            ?? throw new InvalidOperationException($"'{resource}' has no {variable}.");

    /// <summary>The process id of each of <paramref name="count"/> healthy replicas of a project.</summary>
    public async Task<IReadOnlyList<int>> ReplicaProcessIdsAsync(string resource, int count, TimeSpan timeout) =>
        [.. (await HealthyInstancesAsync(resource, count, timeout)).Values.Select(snapshot =>
            Convert.ToInt32(snapshot.Properties.First(p => p.Name == "executable.pid").Value, System.Globalization.CultureInfo.InvariantCulture))];

    /// <summary>The process ids the orchestrator reports for an executable resource.</summary>
    public int ProcessIdOf(string resource)
    {
        if (App.ResourceNotifications.TryGetCurrentState(resource, out var state) &&
            state.Snapshot.Properties.FirstOrDefault(p => p.Name == "executable.pid")?.Value is { } pid)
        {
            return Convert.ToInt32(pid, System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new InvalidOperationException($"The orchestrator reports no process id for '{resource}'.");
    }

    /// <summary>Removes the Containers-mode volumes of the app that ran on <paramref name="dataDirectory"/> (its data, as the folder is in Local mode).</summary>
    public static async Task RemoveVolumesAsync(string dataDirectory)
    {
        var prefix = Path.GetFileName(dataDirectory);
        using var remove = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("docker",
            ["volume", "rm", "-f", $"{prefix}-valkey-data", $"{prefix}-postgres-data"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        await remove.WaitForExitAsync();
    }

    /// <summary>Stops every resource and the orchestrator; the data folder stays for another run.</summary>
    private Task? _starting;

    public async Task StopAsync()
    {
        await App.StopAsync();
        if (_starting is not null)
        {
            try
            {
                await _starting;
            }
            catch (Exception ex) when (ex is OperationCanceledException or DistributedApplicationException or AggregateException)
            {
                // a start that could not finish, stopped
            }
        }
        await App.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await Telemetry.DisposeAsync();
        if (InContainers)
        {
            await RemoveVolumesAsync(DataDirectory);
        }
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
