using System.Diagnostics;
using System.Text.Json;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// azd deploys from the Aspire manifest and cannot deploy executables, so publish mode must describe Valkey and
/// PostgreSQL as containers and the four services as projects with their references, whatever this machine has.
/// </summary>
public sealed class PublishManifestTests
{
    [Fact]
    public async Task The_manifest_deploys_valkey_and_postgres_as_containers_and_the_services_as_projects()
    {
        var folder = Directory.CreateTempSubdirectory("shopref-manifest-").FullName;
        var manifestPath = Path.Combine(folder, "aspire-manifest.json");
        try
        {
            await PublishManifestAsync(manifestPath);
            using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(manifestPath, TestContext.Current.CancellationToken));
            var resources = manifest.RootElement.GetProperty("resources");

            Assert.Equal("container.v0", Type(resources, "valkey"));
            Assert.StartsWith("docker.io/valkey/valkey:9", resources.GetProperty("valkey").GetProperty("image").GetString());
            Assert.StartsWith("container.v", Type(resources, "postgres"));
            Assert.Contains("wal_level=logical", resources.GetProperty("postgres").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
            // No volume: on Azure Container Apps it is an SMB share on which initdb fails (microsoft/aspire#6671).
            Assert.False(resources.GetProperty("postgres").TryGetProperty("volumes", out _), "PostgreSQL must not get a data volume on deploy");
            // Aspire creates no database on deploy (microsoft/aspire#14695): the setup project does, with the superuser's connection.
            Assert.StartsWith("project.v", Type(resources, "postgres-setup"));
            var setup = resources.GetProperty("postgres-setup").GetProperty("env");
            var superuser = setup.GetProperty("ConnectionStrings__postgres").GetString();
            Assert.Contains("Host={postgres.bindings.tcp.host}", superuser);
            Assert.Contains("{postgres-password.value}", superuser);
            Assert.Equal(["catalogdb", "cartdb", "analyticsdb"], Enumerable.Range(0, 3).Select(i => setup.GetProperty($"Databases__{i}__Database").GetString()));
            Assert.Equal("{postgres-catalog-password.value}", setup.GetProperty("Databases__0__Password").GetString());
            // It runs once and exits: no endpoint for anyone to reach while it holds the superuser's password.
            Assert.False(resources.GetProperty("postgres-setup").TryGetProperty("bindings", out _), "postgres-setup must have no endpoint");
            Assert.Equal("parameter.v0", Type(resources, "valkey-password"));
            Assert.Equal("parameter.v0", Type(resources, "postgres-password"));

            foreach (var (service, references) in new Dictionary<string, string[]>
            {
                ["catalog"] = ["valkey", "catalogdb", "analytics"],
                ["cart-session"] = ["valkey", "cartdb", "catalog"],
                ["analytics"] = ["valkey", "analyticsdb"],
                ["rate-limit"] = ["valkey", "catalog", "cart-session", "analytics"],
            })
            {
                Assert.StartsWith("project.v", Type(resources, service));
                var env = resources.GetProperty(service).GetProperty("env").EnumerateObject().Select(p => p.Name).ToList();
                foreach (var reference in references)
                {
                    Assert.Contains(env, name => name == $"ConnectionStrings__{reference}" || name.StartsWith($"services__{reference}__", StringComparison.Ordinal));
                }
            }
            Assert.DoesNotContain(resources.EnumerateObject(), r => Type(resources, r.Name) == "executable.v0");

            // A deployment is a shop that takes writes: every API client with a key parameter of its own, and the ingress
            // as the gateway's trusted proxy (else every visitor shares the ingress's address and quotas).
            var gateway = resources.GetProperty("rate-limit").GetProperty("env");
            foreach (var (client, parameter, permission) in new[]
            {
                ("dashboard", "ratelimit-demo-key", null), ("dashboard-stampede", "ratelimit-stampede-key", null),
                ("dashboard-shoppers", "shoppers-key", "shoppers"), ("operator", "operator-key", "operator"),
                ("catalog-admin", "catalog-admin-key", "catalog.write"),
            })
            {
                Assert.Equal($"{{{parameter}.value}}", gateway.GetProperty($"Clients__{client}__Key").GetString());
                Assert.Equal("parameter.v0", Type(resources, parameter));
                Assert.True(resources.GetProperty(parameter).GetProperty("inputs").GetProperty("value").GetProperty("secret").GetBoolean());
                if (permission is not null)
                {
                    Assert.Equal(permission, gateway.GetProperty($"Clients__{client}__Permissions__0").GetString());
                }
            }
            // Only the gateway can sign; the services are told where it publishes its public keys.
            Assert.Equal("{auth-signing-key.value}", gateway.GetProperty("Auth__SigningKey").GetString());
            Assert.Equal("{visitor-id-key.value}", gateway.GetProperty("Auth__VisitorKey").GetString()); // a deployment's own key
            foreach (var service in new[] { "catalog", "cart-session", "analytics" })
            {
                var env = resources.GetProperty(service).GetProperty("env");
                Assert.False(env.TryGetProperty("Auth__SigningKey", out _), $"{service} is given the signing secret");
                Assert.False(env.TryGetProperty("Auth__VisitorKey", out _), $"{service} is given the visitor key");
                Assert.Equal("{rate-limit.bindings.http.url}", env.GetProperty("Auth__Issuer").GetString());
            }
            Assert.Equal("{gateway-trusted-proxies.value}", gateway.GetProperty("RateLimiting__TrustedProxies__0").GetString());
            Assert.Equal("parameter.v0", Type(resources, "gateway-trusted-proxies"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static string? Type(JsonElement resources, string name) => resources.GetProperty(name).GetProperty("type").GetString();

    private static async Task PublishManifestAsync(string manifestPath)
    {
        var appHostDll = Path.Combine(AppContext.BaseDirectory, "ShopReference.AppHost.dll");
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var argument in new[] { appHostDll, "--publisher", "manifest", "--output-path", manifestPath })
        {
            info.ArgumentList.Add(argument);
        }
        // Publish mode must not depend on what this machine can run: containers are always chosen.
        info.Environment["Infrastructure__Mode"] = "Local";
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"manifest publishing failed: {await output}{await error}");
    }
}
