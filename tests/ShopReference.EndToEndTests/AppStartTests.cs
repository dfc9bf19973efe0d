using System.Net;
using System.Net.Http.Json;
using Npgsql;
using ShopReference.Hosting;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

[Collection(ShopAppCollection.Name)]
public sealed class AppStartTests(ShopAppFixture fixture)
{
    private DistributedApplication App => fixture.Shop.App;

    /// <summary>
    /// The <c>http</c> profile is what <c>dotnet run</c> uses: the dashboard behind it shows the secret parameters and
    /// runs the operator commands, so it must ask for its login token (no anonymous opt-out set for the user).
    /// </summary>
    [Fact]
    public void The_http_launch_profile_makes_the_dashboard_ask_for_its_login_token()
    {
        var path = Path.Combine(Docs.DocCommands.RepositoryRoot(), "AppHost", "Properties", "launchSettings.json");
        using var settings = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var environment = settings.RootElement.GetProperty("profiles").GetProperty("http").GetProperty("environmentVariables");
        Assert.False(environment.TryGetProperty("ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS", out var anonymous)
            && anonymous.GetString()!.Equals("true", StringComparison.OrdinalIgnoreCase), "the http profile opts the dashboard out of its login");
        Assert.Equal("true", environment.GetProperty("ASPIRE_ALLOW_UNSECURED_TRANSPORT").GetString()); // still the http-only profile
    }

    [Fact]
    public async Task Every_resource_and_every_replica_becomes_healthy()
    {
        foreach (var resource in ShopApp.Resources)
        {
            var replicas = resource is "catalog" or "cart-session" or "analytics" ? 2 : 1;

            var healthy = await fixture.Shop.WaitForHealthyInstancesAsync(resource, replicas, TimeSpan.FromSeconds(30));

            Assert.Equal(replicas, healthy.Count);
        }
    }

    /// <summary>
    /// The roles and databases are provisioned by the same run-once worker as in a deployment: by the time the services
    /// are healthy it has ended with exit code 0, and it never had an endpoint while it held the superuser's password.
    /// </summary>
    [Fact]
    public async Task Postgres_setup_provisioned_the_databases_once_and_exited()
    {
        Assert.True(App.ResourceNotifications.TryGetCurrentState(ShopApp.ProvisioningResource, out var setup), "no postgres-setup resource");
        Assert.Equal(KnownResourceStates.Finished, setup.Snapshot.State?.Text);
        Assert.Equal(0, setup.Snapshot.ExitCode);
        Assert.Empty(setup.Snapshot.Urls);
        var log = await ResourceLogs.LastLinesAsync(App.Services.GetRequiredService<ResourceLoggerService>(), setup.ResourceId, 50,
            TestContext.Current.CancellationToken);
        Assert.Contains(log, line => line.Contains("Provisioned catalogdb (owner catalog), cartdb (owner cart), analyticsdb (owner analytics)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_valkey_report_command_shows_keys_memory_and_the_slowest_commands_of_each_node()
    {
        var commands = App.Services.GetRequiredService<ResourceCommandService>();

        var result = await commands.ExecuteCommandAsync("valkey", "valkey-report", TestContext.Current.CancellationToken);

        Assert.True(result.Success, result.Message);
        var nodes = TestValkey.RequestedTopology == ShopReference.Testing.ValkeyTopology.Cluster ? 6 : 1;
        Assert.Equal(nodes, System.Text.RegularExpressions.Regex.Matches(result.Message!, @":\d+ keys: (db0 keys=\d+|none)").Count);
        Assert.Equal(nodes, System.Text.RegularExpressions.Regex.Matches(result.Message!, @":\d+ memory: \S+ used of \S+").Count);
        Assert.Equal(nodes, System.Text.RegularExpressions.Regex.Matches(result.Message!, @":\d+ slowest recent commands \((COMMANDLOG|SLOWLOG)\)").Count);
    }

    [Fact]
    public async Task On_a_cluster_the_dashboard_shows_each_valkey_node_s_role()
    {
        if (TestValkey.RequestedTopology != ShopReference.Testing.ValkeyTopology.Cluster)
        {
            Assert.Skip("Only on a cluster (SHOPREF_VALKEY_TOPOLOGY=Cluster)");
        }
        var nodes = new[] { "valkey", "valkey-1", "valkey-2", "valkey-3", "valkey-4", "valkey-5" };
        var roles = new Dictionary<string, string>();

        await Eventually.UntilAsync(() =>
        {
            foreach (var node in nodes)
            {
                if (App.ResourceNotifications.TryGetCurrentState(node, out var state)
                    && state.Snapshot.Properties.FirstOrDefault(p => p.Name == "valkey.cluster.role")?.Value is string role)
                {
                    roles[node] = role;
                }
            }
            return Task.FromResult(roles.Count == nodes.Length);
        }, TimeSpan.FromSeconds(30), $"roles shown: {string.Join("; ", roles.Select(r => $"{r.Key}: {r.Value}"))}", cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(3, roles.Values.Count(r => r.StartsWith("primary, slots ", StringComparison.Ordinal)));
        Assert.Equal(3, roles.Values.Count(r => r.StartsWith("replica of :", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("catalog")]
    [InlineData("cart-session")]
    [InlineData("analytics")]
    public void Each_service_runs_two_replicas_so_cross_instance_patterns_are_real(string service)
    {
        var model = App.Services.GetRequiredService<DistributedApplicationModel>();
        var resource = model.Resources.Single(r => r.Name == service);

        Assert.Equal(2, resource.Annotations.OfType<ReplicaAnnotation>().Single().Replicas);
    }

    [Theory]
    [InlineData("catalog", 2)]
    [InlineData("cart-session", 2)]
    [InlineData("analytics", 2)]
    [InlineData("rate-limit", 1)]
    public async Task Each_replica_listens_in_a_band_of_its_own_where_no_valkey_node_port_is_picked(string service, int replicas)
    {
        var addresses = await fixture.Shop.ReplicaAddressesAsync(service, replicas, TimeSpan.FromSeconds(30));
        // A cluster keeps its node and bus ports beside its data; one server is proxied like a service and has none.
        var clusterPorts = Path.Combine(fixture.Shop.DataDirectory, "valkey-cluster", "cluster-ports");
        var nodePorts = File.Exists(clusterPorts)
            ? File.ReadAllLines(clusterPorts).SelectMany(line => line.Split(' ')).Select(int.Parse).ToList()
            : [];

        // Aspire's own band (10000–32767) would hold LocalPorts' band: the AppHost narrows it, and Aspire keeps to it.
        var configuration = App.Services.GetRequiredService<Microsoft.Extensions.Configuration.IConfiguration>();
        Assert.Equal($"{LocalPorts.ReplicaBandFirst}-{LocalPorts.ReplicaBandLast}",
            $"{configuration["DcpPublisher:ProxylessEndpointPortRangeStart"]}-{configuration["DcpPublisher:ProxylessEndpointPortRangeEnd"]}");
        Assert.All(addresses, address => Assert.InRange(address.Port, LocalPorts.ReplicaBandFirst, LocalPorts.ReplicaBandLast));
        Assert.Equal(TestValkey.RequestedTopology == ShopReference.Testing.ValkeyTopology.Cluster ? 12 : 0, nodePorts.Count);
        Assert.All(nodePorts, port => Assert.InRange(port, LocalPorts.First, LocalPorts.Last - 1));
    }

    [Theory]
    [InlineData("/api/catalog/wiring", "catalog", "catalogdb")]
    [InlineData("/api/cart/wiring", "cart", "cartdb")]
    [InlineData("/api/analytics/wiring", "analytics", "analyticsdb")]
    public async Task Each_service_answers_through_the_gateway_with_valkey_and_its_database(string path, string service, string database)
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        var report = await gateway.GetFromJsonAsync<WiringReport>(path, TestContext.Current.CancellationToken);

        Assert.NotNull(report);
        Assert.Equal(service, report.Service);
        Assert.Equal(database, report.Database);
        Assert.True(report.ValkeyRoundTripMs > 0);
        Assert.Null(report.Instance); // host details are for operators only
        Assert.Null(report.DatabaseServerVersion);
    }

    [Fact]
    public async Task An_operator_sees_the_instance_and_database_version_in_the_wiring_report()
    {
        using var gateway = await fixture.Shop.ClientAsAsync("rate-limit", "operator", TestContext.Current.CancellationToken);

        var report = await gateway.GetFromJsonAsync<WiringReport>("/api/catalog/wiring", TestContext.Current.CancellationToken);

        Assert.False(string.IsNullOrEmpty(report!.Instance));
        Assert.False(string.IsNullOrEmpty(report.DatabaseServerVersion));
    }

    [Theory]
    [InlineData("catalog", "catalog")]
    [InlineData("cart-session", "cart")]
    [InlineData("analytics", "analytics")]
    [InlineData("rate-limit", "ratelimit")]
    public async Task Each_resource_links_its_openapi_document_through_the_gateway_and_the_link_answers(string resource, string prefix)
    {
        var ct = TestContext.Current.CancellationToken;
        var instance = (await fixture.Shop.WaitForHealthyInstancesAsync(resource, resource == "rate-limit" ? 1 : 2, TimeSpan.FromSeconds(30))).First();
        string? link = null;
        await Eventually.UntilAsync(() =>
        {
            link = App.ResourceNotifications.TryGetCurrentState(instance, out var state)
                ? state.Snapshot.Urls.Select(u => u.Url).FirstOrDefault(u => u.EndsWith($"/api/{prefix}/openapi/v1.json", StringComparison.Ordinal))
                : null;
            return Task.FromResult(link is not null);
        }, TimeSpan.FromSeconds(30), $"{resource} shows no link to its OpenAPI document", TimeSpan.FromMilliseconds(200), ct);
        using var http = new HttpClient();

        using var document = await http.GetAsync(link, ct);

        Assert.Equal(App.GetEndpoint("rate-limit", "http").Authority, new Uri(link!).Authority); // through the gateway
        Assert.Equal(HttpStatusCode.OK, document.StatusCode);
        Assert.StartsWith("3.", (await document.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(ct)).GetProperty("openapi").GetString());
    }

    [Fact]
    public async Task The_gateway_itself_reaches_valkey()
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        var report = await gateway.GetFromJsonAsync<WiringReport>("/api/ratelimit/wiring", TestContext.Current.CancellationToken);

        Assert.Equal("ratelimit", report!.Service);
        Assert.Null(report.Database);
    }

    [Fact]
    public async Task Valkey_refuses_a_command_without_the_password()
    {
        var endpoint = App.GetEndpoint("valkey", "tcp");

        Assert.Equal("-NOAUTH", (await RawResp.SendUnauthenticatedAsync(endpoint.Host, endpoint.Port, "SET stolen 1", TestContext.Current.CancellationToken)).Split(' ')[0]);
        Assert.True(await RespProbe.PingAsync(endpoint.Host, endpoint.Port, fixture.Shop.ValkeyPassword, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Postgres_refuses_a_wrong_password_and_serves_the_right_one()
    {
        var connectionString = await App.GetConnectionStringAsync("catalogdb", TestContext.Current.CancellationToken);
        var wrong = new NpgsqlConnectionStringBuilder(connectionString) { Password = "wrong", Pooling = false };

        await using var intruder = new NpgsqlConnection(wrong.ConnectionString);
        var error = await Assert.ThrowsAsync<PostgresException>(() => intruder.OpenAsync(TestContext.Current.CancellationToken));
        Assert.Equal(PostgresErrorCodes.InvalidPassword, error.SqlState);

        await using var owner = new NpgsqlConnection(connectionString);
        await owner.OpenAsync(TestContext.Current.CancellationToken);
        await using var select = new NpgsqlCommand("select current_database()", owner);
        Assert.Equal("catalogdb", await select.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    private sealed record WiringReport(string Service, string? Instance, double ValkeyRoundTripMs, string? Database, string? DatabaseServerVersion);
}
