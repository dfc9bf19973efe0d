using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ShopReference.Hosting;
using ShopReference.Provisioner;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;

namespace ShopReference.Tests.Platform;

/// <summary>
/// A deployment: PostgreSQL starts empty (Aspire creates no database on deploy), the <c>postgres-setup</c> project
/// provisions the roles and databases with the superuser's connection string and exits, and the services then come up
/// on their own roles, none of which is a superuser. A server that never answers ends the run with a failure in time.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class DeployedSetupTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task On_an_empty_server_the_setup_creates_the_databases_and_the_services_come_up_on_their_own_roles()
    {
        await using var postgres = await TestPostgresServer.StartAsync(); // empty: only the maintenance databases
        var grants = new[]
        {
            new DatabaseGrant("catalogdb", "catalog", Secrets.NewPassword(), Replication: true),
            new DatabaseGrant("cartdb", "cart", Secrets.NewPassword()),
        };
        var settings = new Dictionary<string, string?> { ["ConnectionStrings:postgres"] = postgres.ConnectionString() };
        for (var i = 0; i < grants.Length; i++)
        {
            settings[$"Databases:{i}:Database"] = grants[i].Database;
            settings[$"Databases:{i}:Role"] = grants[i].Role;
            settings[$"Databases:{i}:Password"] = grants[i].Password;
            settings[$"Databases:{i}:Replication"] = grants[i].Replication.ToString();
        }

        // The setup project's run, as its Program runs it: once, then its exit code.
        Assert.Equal(0, await DatabaseSetup.RunAsync(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), NullLogger.Instance, Ct));

        await using var catalog = await InProcessService.CatalogAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:catalogdb"] = RoleConnectionString(postgres, grants[0]),
            ["Catalog:ChangeFeed:Slot"] = "catalog_cache_" + Guid.NewGuid().ToString("N")[..8],
        });
        await using var cart = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:cartdb"] = RoleConnectionString(postgres, grants[1]),
        });
        foreach (var service in new[] { catalog, cart })
        {
            using var http = service.Client();
            await Eventually.UntilAsync(async () => (await http.GetAsync("/health", Ct)).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(60),
                $"{service.Address} never became healthy on its provisioned database", TimeSpan.FromMilliseconds(200), Ct);
        }
        using (var read = await catalog.Client().GetAsync("/api/catalog/products/1", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode); // the catalog created and seeded its tables as its own role
        }

        await using var connection = new NpgsqlConnection(postgres.ConnectionString());
        await connection.OpenAsync(Ct);
        await using var roles = new NpgsqlCommand("select rolname, rolsuper, rolcreatedb, rolreplication from pg_roles where rolname in ('catalog', 'cart') order by rolname", connection);
        var found = new List<(string, bool, bool, bool)>();
        await using (var reader = await roles.ExecuteReaderAsync(Ct))
        {
            while (await reader.ReadAsync(Ct)) found.Add((reader.GetString(0), reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3)));
        }
        Assert.Equal([("cart", false, false, false), ("catalog", false, false, true)], found);
    }

    [Fact]
    public async Task A_server_that_never_answers_ends_the_setup_with_a_failure_once_its_timeout_passes()
    {
        var closed = LocalPorts.NextFree(); // nothing listens there
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:postgres"] = $"Host=127.0.0.1;Port={closed};Username=postgres;Password=x;Timeout=2",
            ["Databases:0:Database"] = "cartdb",
            ["Databases:0:Role"] = "cart",
            ["Databases:0:Password"] = Secrets.NewPassword(),
            ["Provisioning:Timeout"] = "00:00:05",
        };
        var run = DatabaseSetup.RunAsync(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), NullLogger.Instance, Ct);

        // Not a timed assertion: only that it ends on its own (within a generous bound), and with a failure.
        Assert.Equal(1, await run.WaitAsync(TimeSpan.FromMinutes(2), Ct));
    }

    private static string RoleConnectionString(TestPostgresServer postgres, DatabaseGrant grant) =>
        new NpgsqlConnectionStringBuilder(postgres.ConnectionString(grant.Database)) { Username = grant.Role, Password = grant.Password }.ConnectionString;
}
