using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// The app's credentials as AppHost secret parameters (docs/security.md): the token signing key every service
/// validates with, and the keys of the API clients the gateway knows. Only SHA-256 digests of the keys reach the
/// gateway. The dashboard commands use these clients exactly as a user would: they ask the gateway for a token.
/// </summary>
public sealed class ShopAuth
{
    private ShopAuth(IDistributedApplicationBuilder builder)
    {
        SigningKey = builder.AddPasswordParameter("auth-signing-key",
            "HMAC-SHA256 key of the tokens the gateway issues and every service validates.", length: 64);
        DemoKey = builder.AddPasswordParameter("ratelimit-demo-key",
            "Key of the demo API client 'dashboard' (partner reads; the traffic commands use it).", length: 32);
        OperatorKey = builder.AddPasswordParameter("operator-key",
            "Key of the API client 'operator' (permission operator: /admin routes). Exchange it at POST /api/auth/token.", length: 32);
        CatalogAdminKey = builder.AddPasswordParameter("catalog-admin-key",
            "Key of the API client 'catalog-admin' (permission catalog.write). Exchange it at POST /api/auth/token.", length: 32);
    }

    /// <summary>HMAC-SHA256 key of every token (issued by the gateway, validated by every service).</summary>
    public ParameterResource SigningKey { get; }

    /// <summary>Key of the demo API client <c>dashboard</c> (partner reads, no permission), used by the traffic commands.</summary>
    public ParameterResource DemoKey { get; }

    /// <summary>Key of the client <c>operator</c> (permission <c>operator</c>).</summary>
    public ParameterResource OperatorKey { get; }

    /// <summary>Key of the client <c>catalog-admin</c> (permission <c>catalog.write</c>).</summary>
    public ParameterResource CatalogAdminKey { get; }

    public static ShopAuth AddShopAuth(IDistributedApplicationBuilder builder) => new(builder);

    /// <summary>The key of the second demo client (<c>dashboard-stampede</c>), derived from the demo key.</summary>
    public static string StampedeKey(string demoKey) => demoKey + "-stampede";

    /// <summary>The key of the shopper simulation's client (<c>dashboard-shoppers</c>, permission <c>shoppers</c>), derived from the demo key.</summary>
    public static string ShoppersKey(string demoKey) => demoKey + "-shoppers";

    /// <summary>
    /// Lets a service validate tokens. Aspire turns on ASP.NET Core's forwarded-headers handling in publish mode, which
    /// believes <c>X-Forwarded-*</c> from any peer; it is turned off here: the gateway believes only its trusted
    /// proxies, and the services learn the client's scheme and identity from the gateway's signed client context.
    /// </summary>
    public IResourceBuilder<ProjectResource> ValidateTokens(IResourceBuilder<ProjectResource> project) =>
        project.WithEnvironment("Auth__SigningKey", SigningKey)
            .WithEnvironment("ASPNETCORE_FORWARDEDHEADERS_ENABLED", "false");

    /// <summary>Makes the gateway the issuer, with the five clients. A deployment configures its own clients instead.</summary>
    public IResourceBuilder<ProjectResource> IssueTokens(IResourceBuilder<ProjectResource> gateway)
    {
        ValidateTokens(gateway);
        if (!gateway.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return gateway;
        }
        return gateway.WithEnvironment(async context =>
        {
            var demo = await DemoKey.GetValueAsync(context.CancellationToken) ?? "";
            Client(context, "dashboard", demo);
            Client(context, "dashboard-stampede", StampedeKey(demo));
            Client(context, "dashboard-shoppers", ShoppersKey(demo), "shoppers");
            Client(context, "operator", await OperatorKey.GetValueAsync(context.CancellationToken) ?? "", "operator");
            Client(context, "catalog-admin", await CatalogAdminKey.GetValueAsync(context.CancellationToken) ?? "", "catalog.write");
        });
    }

    /// <summary>An access token for <paramref name="client"/>, from the gateway's token endpoint (OAuth client credentials).</summary>
    public static async Task<string> TokenAsync(Uri gateway, string client, string key, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/token")
        {
            Content = new FormUrlEncodedContent([new("grant_type", "client_credentials")]),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(client)}:{Uri.EscapeDataString(key)}")));
        using var response = await http.SendAsync(request, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The gateway refused a token to '{client}': {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        return body.GetProperty("access_token").GetString()!;
    }

    /// <summary>An operator's token, for the commands that call <c>/admin</c> routes.</summary>
    public async Task<string> OperatorTokenAsync(IResourceBuilder<ProjectResource> gateway, CancellationToken cancellationToken) =>
        await TokenAsync(new Uri(gateway.GetEndpoint("http").Url), "operator", await OperatorKey.GetValueAsync(cancellationToken) ?? "", cancellationToken);

    private static void Client(EnvironmentCallbackContext context, string name, string key, params string[] permissions)
    {
        context.EnvironmentVariables[$"Clients__{name}__KeySha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
        for (var i = 0; i < permissions.Length; i++)
        {
            context.EnvironmentVariables[$"Clients__{name}__Permissions__{i}"] = permissions[i];
        }
    }
}
