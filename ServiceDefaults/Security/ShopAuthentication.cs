using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
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
/// forwards, attaches its own view of the client (the client-context token). Each service validates both with
/// ASP.NET Core's JwtBearer handler against the shared signing key (<c>Auth:SigningKey</c>, an AppHost secret), so a
/// permission is enforced in the service itself, not merely because the gateway does not route a path.
/// </summary>
public static class ShopAuthentication
{
    public const string Issuer = "shopreference-gateway";

    /// <summary>Audience of the access tokens a client obtains and sends as <c>Authorization: Bearer</c>.</summary>
    public const string ApiAudience = "shopreference-api";

    /// <summary>Audience of the client-context token the gateway attaches; an access token is never accepted in its place.</summary>
    public const string ClientContextAudience = "shopreference-client-context";

    /// <summary>Carries the client-context token from the gateway to a service. The gateway removes any inbound copy.</summary>
    public const string ClientContextHeader = "X-Shop-Client";

    /// <summary>A scheme of its own, never the default: a request that carries only a client context is still anonymous.</summary>
    public const string ClientContextScheme = "ClientContext";

    public const string PermissionClaim = "permission";
    public const string VisitorClaim = "visitor";
    public const string SchemeClaim = "scheme";
    public const string ConfigurationKey = "Auth:SigningKey";

    /// <summary>The HMAC-SHA256 key shared by the issuer and the validators; at least 32 characters.</summary>
    public static SymmetricSecurityKey SigningKey(IConfiguration configuration)
    {
        var secret = configuration[ConfigurationKey];
        if (string.IsNullOrEmpty(secret) || secret.Length < 32)
        {
            throw new InvalidOperationException(
                $"{ConfigurationKey} must be set to a secret of at least 32 characters (the AppHost passes its 'auth-signing-key' parameter).");
        }
        return new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)) { KeyId = "shop" };
    }

    /// <summary>Bearer authentication, the client-context scheme and one authorization policy per permission.</summary>
    public static TBuilder AddShopAuthentication<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        var key = SigningKey(builder.Configuration); // at start: a service without its key must not start at all
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(options =>
            {
                options.MapInboundClaims = false;
                options.TokenValidationParameters = Validation(key, ApiAudience);
            })
            .AddJwtBearer(ClientContextScheme, options =>
            {
                options.MapInboundClaims = false;
                options.TokenValidationParameters = Validation(key, ClientContextAudience);
                options.Events = new JwtBearerEvents
                {
                    OnMessageReceived = context =>
                    {
                        var header = context.Request.Headers[ClientContextHeader];
                        context.Token = header.Count == 1 ? header[0] : null;
                        return Task.CompletedTask;
                    },
                };
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

    private static TokenValidationParameters Validation(SymmetricSecurityKey key, string audience) => new()
    {
        ValidIssuer = Issuer,
        ValidAudience = audience,
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        IssuerSigningKey = key,
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
