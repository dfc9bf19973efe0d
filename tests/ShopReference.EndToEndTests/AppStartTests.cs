using System.Net.Http.Json;
using Npgsql;
using ShopReference.LocalServers;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

[Collection(ShopAppCollection.Name)]
public sealed class AppStartTests(ShopAppFixture fixture)
{
    private DistributedApplication App => fixture.Shop.App;

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
