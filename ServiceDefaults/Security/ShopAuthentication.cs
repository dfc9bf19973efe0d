using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Microsoft.Extensions.Hosting;

/// <summary>The permissions a token can carry (claim <see cref="ShopAuthentication.PermissionClaim"/>), each a named policy.</summary>
public static class Permissions
{
    /// <summary>Change products: <c>PUT /api/catalog/products/{id}</c> and any later catalog write.</summary>
    public const string CatalogWrite = "catalog.write";

    /// <summary>The <c>/admin/*</c> routes of every service and the dashboard commands that call them.</summary>
    public const string Operator = "operator";

    /// <summary>Speak for up to 64 simulated shoppers at the gateway (<c>X-Api-Key</c> with <c>X-Shopper</c>): the dashboard's simulation.</summary>
    public const string Shoppers = "shoppers";

    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal) { CatalogWrite, Operator, Shoppers };
}

/// <summary>
/// How every service recognises a caller (docs/security.md). The gateway is the only issuer: it exchanges a client's
/// secret for a short-lived JWT (OAuth 2.0 client credentials at <c>POST /api/auth/token</c>) and, on each request it
/// forwards, attaches its own view of the client (the client-context token). It signs both with a private key only it
/// holds (<see cref="IssuerSigningKey"/>); each service validates them with ASP.NET Core's JwtBearer handler against
/// the public keys the gateway publishes (<c>Auth:Issuer</c>, fetched again when a token names a key it does not know,
/// so the gateway can roll its key over without a restart of the services), or against keys pinned in
/// <c>Auth:Jwks</c>. A permission is enforced in the service itself, not merely because the gateway does not route a path.
/// </summary>
public static class ShopAuthentication
{
    public const string Issuer = "shopreference-gateway";

    /// <summary>Audience of the access tokens a client obtains and sends as <c>Authorization: Bearer</c>.</summary>
    public const string ApiAudience = "shopreference-api";

    /// <summary>The JWT <c>typ</c> of an access token (RFC 9068); a client context is never accepted in its place.</summary>
    public const string AccessTokenType = "at+jwt";

    /// <summary>Audience of the client-context token the gateway attaches; an access token is never accepted in its place.</summary>
    public const string ClientContextAudience = "shopreference-client-context";

    /// <summary>The JWT <c>typ</c> of a client-context token.</summary>
    public const string ClientContextType = "shop-client+jwt";

    /// <summary>Carries the client-context token from the gateway to a service. The gateway removes any inbound copy.</summary>
    public const string ClientContextHeader = "X-Shop-Client";

    /// <summary>A scheme of its own, never the default: a request that carries only a client context is still anonymous.</summary>
    public const string ClientContextScheme = "ClientContext";

    public const string PermissionClaim = "permission";
    public const string ScopeClaim = "scope";
    public const string VisitorClaim = "visitor";
    public const string SchemeClaim = "scheme";

    /// <summary>The token server's address (the gateway's), whose <c>/.well-known/openid-configuration</c> names its keys.</summary>
    public const string IssuerAddressKey = "Auth:Issuer";

    /// <summary>Public keys to accept without asking the token server: a JSON Web Key Set.</summary>
    public const string PinnedKeysKey = "Auth:Jwks";

    /// <summary>How soon after a fetch a token naming an unknown key may make a service fetch the keys again (default 10 s).</summary>
    public const string KeyRefreshIntervalKey = "Auth:KeyRefreshInterval";

    /// <summary>Bearer authentication, the client-context scheme and one authorization policy per permission.</summary>
    public static TBuilder AddShopAuthentication<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // A token naming a key the service has not seen waits for the keys to be fetched again (at most once per refresh
        // interval), instead of being refused while IdentityModel fetches them in the background, its default: the
        // first tokens after a rollover are accepted, not refused (IssuerKeyRolloverTests).
        AppContext.SetSwitch("Switch.Microsoft.IdentityModel.UpdateConfigAsBlocking", true);
        var keys = IssuerKeysFrom(builder.Configuration);
        foreach (var (scheme, audience, type) in new[]
        {
            (JwtBearerDefaults.AuthenticationScheme, ApiAudience, AccessTokenType),
            (ClientContextScheme, ClientContextAudience, ClientContextType),
        })
        {
            builder.Services.AddOptions<JwtBearerOptions>(scheme)
                .Configure(options =>
                {
                    options.MapInboundClaims = false;
                    options.TokenValidationParameters = Validation(keys.Pinned, audience, type);
                    options.ConfigurationManager = keys.Published;
                })
                // Checked once everything is configured (the gateway adds its own keys): a service without any key
                // must not start at all.
                .Validate(options => options.ConfigurationManager is not null || options.TokenValidationParameters.IssuerSigningKeys?.Any() == true,
                    $"Tokens cannot be validated: set {IssuerAddressKey} (the gateway's address) or {PinnedKeysKey} (its public keys).")
                .ValidateOnStart();
        }
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer()
            .AddJwtBearer(ClientContextScheme, options => options.Events = new JwtBearerEvents
            {
                OnMessageReceived = context =>
                {
                    var header = context.Request.Headers[ClientContextHeader];
                    context.Token = header.Count == 1 ? header[0] : null;
                    return Task.CompletedTask;
                },
            });

        builder.Services.AddSingleton<ClientContextCache>();

        var authorization = builder.Services.AddAuthorizationBuilder();
        foreach (var permission in Permissions.All)
        {
            authorization.AddPolicy(permission, policy => policy
                .AddAuthenticationSchemes(JwtBearerDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser()
                .RequireClaim(PermissionClaim, permission));
        }
        return builder;
    }

    /// <summary>True when the caller's access token carries <paramref name="permission"/>.</summary>
    public static bool Has(this System.Security.Claims.ClaimsPrincipal user, string permission) =>
        user.HasClaim(PermissionClaim, permission);

    // One configuration manager for both schemes: the keys are fetched once per process and again only when a token
    // names a key the process has not seen (at most every KeyRefreshInterval) or every few minutes.
    private static (SecurityKey[] Pinned, ConfigurationManager<OpenIdConnectConfiguration>? Published) IssuerKeysFrom(IConfiguration configuration)
    {
        var pinned = configuration[PinnedKeysKey] is { Length: > 0 } jwks ? new JsonWebKeySet(jwks).GetSigningKeys().ToArray() : [];
        if (configuration[IssuerAddressKey] is not { Length: > 0 } address)
        {
            return (pinned, null);
        }
        var metadata = $"{address.TrimEnd('/')}/.well-known/openid-configuration";
        var published = new ConfigurationManager<OpenIdConnectConfiguration>(metadata, new OpenIdConnectConfigurationRetriever(),
            // Inside the app the gateway is reached over plain http (TLS ends at the ingress), like every service; a
            // gateway that does not answer fails the validation in seconds rather than holding the request.
            new HttpDocumentRetriever(new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
            {
                RequireHttps = metadata.StartsWith("https:", StringComparison.OrdinalIgnoreCase),
            })
        {
            RefreshInterval = configuration.GetValue(KeyRefreshIntervalKey, TimeSpan.FromSeconds(10)),
            AutomaticRefreshInterval = TimeSpan.FromMinutes(10),
        };
        return (pinned, published);
    }

    private static TokenValidationParameters Validation(SecurityKey[] pinned, string audience, string type) => new()
    {
        ValidIssuer = Issuer,
        ValidAudience = audience,
        ValidTypes = [type],
        ValidAlgorithms = [IssuerSigningKey.Algorithm],
        IssuerSigningKeys = pinned,
        ClockSkew = TimeSpan.FromSeconds(30),
        RequireExpirationTime = true,
        RequireSignedTokens = true,
        NameClaimType = "sub",
    };
}

/// <summary>
/// The gateway's view of the client, as it forwarded the request: an opaque visitor id (a hash of the address or API
/// client the limiter counted) and the scheme the client used (https behind a TLS-terminating ingress). It is signed,
/// so a header an outside client sends cannot pass for it; a request that did not come through the gateway has none.
/// </summary>
public sealed record ClientContext(string Visitor, bool IsHttps)
{
    public static async Task<ClientContext?> FromAsync(HttpContext http)
    {
        var header = http.Request.Headers[ShopAuthentication.ClientContextHeader];
        if (header.Count == 0)
        {
            return null;
        }
        var cache = http.RequestServices.GetService<ClientContextCache>();
        if (header.Count == 1 && cache is not null && cache.TryGet(header[0]!, out var known))
        {
            return known;
        }
        var result = await http.AuthenticateAsync(ShopAuthentication.ClientContextScheme);
        if (!result.Succeeded || result.Principal.FindFirst(ShopAuthentication.VisitorClaim)?.Value is not { Length: > 0 } visitor)
        {
            return null;
        }
        var context = new ClientContext(visitor, result.Principal.FindFirst(ShopAuthentication.SchemeClaim)?.Value == "https");
        // Kept until the token's own expiry (the validator required one), never longer.
        if (cache is not null && long.TryParse(result.Principal.FindFirst("exp")?.Value, out var exp))
        {
            cache.Add(header[0]!, context, DateTimeOffset.FromUnixTimeSeconds(exp));
        }
        return context;
    }
}
