using ShopReference.Shoppers;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// The app's credentials as AppHost secret parameters (docs/security.md): the secret the gateway derives its signing
/// key pair from, given to the gateway alone (the services validate with the public keys the gateway publishes), and
/// one independent key per API client the gateway knows, in every mode (run and deployed). The gateway keeps only
/// digests of the client keys once it has started. The dashboard commands use these clients exactly as a user would:
/// they ask the gateway for a token.
/// </summary>
public sealed class ShopAuth
{
    private ShopAuth(IDistributedApplicationBuilder builder)
    {
        SigningKey = builder.AddPasswordParameter("auth-signing-key",
            "Secret the gateway derives its token signing key pair from (ES256). Only the gateway is given it.", length: 64);
        VisitorKey = builder.AddPasswordParameter("visitor-id-key",
            "Key of the gateway's visitor ids (HMAC-SHA256 of a client's address), so that no one else can compute the id of an address. Only the gateway is given it.", length: 32);
        // A rollover: the new secret in auth-signing-key, the old one here, until the tokens it signed have expired.
        if (builder.Configuration[$"Parameters:{PreviousSigningKeyParameter}"] is { Length: > 0 })
        {
            PreviousSigningKey = builder.AddParameter(PreviousSigningKeyParameter, secret: true)
                .WithDescription("The previous auth-signing-key during a rollover: its public key stays published until its tokens expire.");
        }
        DemoKey = AddClient(builder, "dashboard", "ratelimit-demo-key", "partner reads; the burst command uses it");
        StampedeKey = AddClient(builder, "dashboard-stampede", "ratelimit-stampede-key", "partner reads; the stampede command uses it");
        ShoppersKey = AddClient(builder, "dashboard-shoppers", "shoppers-key", "speaks for simulated shoppers", "shoppers");
        OperatorKey = AddClient(builder, "operator", "operator-key", "/admin routes", "operator");
        CatalogAdminKey = AddClient(builder, "catalog-admin", "catalog-admin-key", "product writes", "catalog.write");
    }

    /// <summary>One API client of the gateway: its name, its key parameter and the permissions its tokens carry.</summary>
    public sealed record Client(string Name, ParameterResource Key, string[] Permissions);

    private readonly List<Client> _clients = [];

    /// <summary>Every API client, each with a key of its own (none derived from another).</summary>
    public IReadOnlyList<Client> Clients => _clients;

    public const string PreviousSigningKeyParameter = "auth-previous-signing-key";

    /// <summary>The secret of the gateway's signing key pair; no other resource is given it.</summary>
    public ParameterResource SigningKey { get; }

    /// <summary>The key of the visitor ids the gateway puts in its client context; no other resource is given it.</summary>
    public ParameterResource VisitorKey { get; }

    /// <summary>The previous signing secret, set only during a key rollover.</summary>
    public IResourceBuilder<ParameterResource>? PreviousSigningKey { get; }

    /// <summary>Key of the demo API client <c>dashboard</c> (partner reads, no permission), used by the traffic commands.</summary>
    public ParameterResource DemoKey { get; }

    /// <summary>Key of the client <c>dashboard-stampede</c> (partner reads), used by the stampede command.</summary>
    public ParameterResource StampedeKey { get; }

    /// <summary>Key of the shopper simulation's client <c>dashboard-shoppers</c> (permission <c>shoppers</c>).</summary>
    public ParameterResource ShoppersKey { get; }

    /// <summary>Key of the client <c>operator</c> (permission <c>operator</c>).</summary>
    public ParameterResource OperatorKey { get; }

    /// <summary>Key of the client <c>catalog-admin</c> (permission <c>catalog.write</c>).</summary>
    public ParameterResource CatalogAdminKey { get; }

    public static ShopAuth AddShopAuth(IDistributedApplicationBuilder builder) => new(builder);

    private ParameterResource AddClient(IDistributedApplicationBuilder builder, string name, string parameter, string purpose, params string[] permissions)
    {
        var key = builder.AddPasswordParameter(parameter,
            $"Key of the API client '{name}' ({purpose}; permissions: {(permissions.Length == 0 ? "none" : string.Join(", ", permissions))}). Exchange it at POST /api/auth/token.",
            length: 32);
        _clients.Add(new(name, key, permissions));
        return key;
    }

    /// <summary>
    /// Lets a service validate tokens: it is told where the issuer publishes its public keys, and nothing secret.
    /// Aspire turns on ASP.NET Core's forwarded-headers handling in publish mode, which believes <c>X-Forwarded-*</c>
    /// from any peer; it is turned off here: the gateway believes only its trusted proxies, and the services learn the
    /// client's scheme and identity from the gateway's signed client context.
    /// </summary>
    public IResourceBuilder<ProjectResource> ValidateTokens(IResourceBuilder<ProjectResource> project, IResourceBuilder<ProjectResource> gateway) =>
        DistrustForwardedHeaders(project).WithEnvironment("Auth__Issuer", gateway.GetEndpoint("http"));

    /// <summary>
    /// Makes the gateway the issuer, with every client, in run mode and in a deployment alike (a deployment's keys are
    /// its own secret parameters). The gateway hashes each client key at start and keeps only the digest.
    /// </summary>
    public IResourceBuilder<ProjectResource> IssueTokens(IResourceBuilder<ProjectResource> gateway)
    {
        DistrustForwardedHeaders(gateway).WithEnvironment("Auth__SigningKey", SigningKey).WithEnvironment("Auth__VisitorKey", VisitorKey);
        if (PreviousSigningKey is not null)
        {
            gateway.WithEnvironment("Auth__PreviousSigningKey", PreviousSigningKey);
        }
        foreach (var client in _clients)
        {
            gateway.WithEnvironment($"Clients__{client.Name}__Key", client.Key);
            for (var i = 0; i < client.Permissions.Length; i++)
            {
                gateway.WithEnvironment($"Clients__{client.Name}__Permissions__{i}", client.Permissions[i]);
            }
        }
        return gateway;
    }

    private static IResourceBuilder<ProjectResource> DistrustForwardedHeaders(IResourceBuilder<ProjectResource> project) =>
        project.WithEnvironment("ASPNETCORE_FORWARDEDHEADERS_ENABLED", "false");

    /// <summary>An access token for <paramref name="client"/>, from the gateway's token endpoint (OAuth client credentials).</summary>
    public static async Task<string> TokenAsync(Uri gateway, string client, string key, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(10) };
        return (await ShopClient.TokenAsync(http, client, key, cancellationToken)).Value;
    }

    /// <summary>An operator's token, for the commands that call <c>/admin</c> routes.</summary>
    public async Task<string> OperatorTokenAsync(IResourceBuilder<ProjectResource> gateway, CancellationToken cancellationToken) =>
        await TokenAsync(new Uri(gateway.GetEndpoint("http").Url), "operator", await OperatorKey.GetValueAsync(cancellationToken) ?? "", cancellationToken);
}
