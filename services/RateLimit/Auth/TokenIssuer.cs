using Microsoft.Extensions.Caching.Memory;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ShopReference.RateLimit.Auth;

/// <summary>
/// The one issuer of tokens in the app (signing with IdentityModel's <see cref="JsonWebTokenHandler"/>, ES256, with the
/// key pair derived from <c>Auth:SigningKey</c>, a secret only the gateway is given): access tokens for API clients,
/// and the client-context tokens the gateway attaches to the requests it forwards. Both are short-lived, so a leaked
/// one is worth minutes, not a standing credential. The public keys it publishes are the current one and, during a
/// rollover, the previous one (<c>Auth:PreviousSigningKey</c>), so tokens signed just before the switch stay valid.
/// </summary>
public sealed class TokenIssuer
{
    /// <summary>How long an access token is valid; a client asks for a new one when it lapses.</summary>
    public static readonly TimeSpan AccessTokenLifetime = TimeSpan.FromMinutes(5);

    /// <summary>How long a client-context token is valid; it is reused for half that, per client.</summary>
    public static readonly TimeSpan ClientContextLifetime = TimeSpan.FromMinutes(2);

    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly SigningCredentials _credentials;
    private readonly TimeProvider _time;
    private readonly MemoryCache _contexts = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    public const string SigningKeySetting = "Auth:SigningKey";
    public const string PreviousSigningKeySetting = "Auth:PreviousSigningKey";

    public TokenIssuer(IConfiguration configuration, TimeProvider? time = null)
    {
        var current = IssuerSigningKey.FromSecret(configuration[SigningKeySetting], SigningKeySetting);
        _credentials = new SigningCredentials(current, IssuerSigningKey.Algorithm);
        PublishedKeys = configuration[PreviousSigningKeySetting] is { Length: > 0 } previous
            ? [current, IssuerSigningKey.FromSecret(previous, PreviousSigningKeySetting)]
            : [current];
        Jwks = IssuerSigningKey.Jwks(PublishedKeys);
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The keys a token of this issuer may be signed with (public halves only leave the process).</summary>
    public IReadOnlyList<ECDsaSecurityKey> PublishedKeys { get; }

    /// <summary>The JSON Web Key Set served at <c>/.well-known/jwks.json</c>.</summary>
    public string Jwks { get; }

    /// <summary>An access token for <paramref name="client"/> carrying <paramref name="permissions"/>.</summary>
    public string AccessToken(string client, IEnumerable<string> permissions)
    {
        var granted = permissions.ToArray();
        var claims = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["sub"] = client,
            ["client_id"] = client,
            ["jti"] = Guid.NewGuid().ToString("N"),
            [ShopAuthentication.PermissionClaim] = granted,
            [ShopAuthentication.ScopeClaim] = string.Join(' ', granted), // RFC 9068's form of the same grant
        };
        return Create(ShopAuthentication.ApiAudience, ShopAuthentication.AccessTokenType, claims, AccessTokenLifetime);
    }

    /// <summary>
    /// The client-context token for a visitor: cached per (visitor, scheme) for half its lifetime, so a busy client
    /// costs one signature a minute, and bounded in number, so many distinct addresses cannot grow the cache.
    /// </summary>
    public string ClientContext(string visitor, bool isHttps)
    {
        var key = (visitor, isHttps);
        if (_contexts.TryGetValue(key, out string? token))
        {
            return token!;
        }
        token = Create(ShopAuthentication.ClientContextAudience, ShopAuthentication.ClientContextType, new Dictionary<string, object>(StringComparer.Ordinal)
        {
            [ShopAuthentication.VisitorClaim] = visitor,
            [ShopAuthentication.SchemeClaim] = isHttps ? "https" : "http",
        }, ClientContextLifetime);
        _contexts.Set(key, token, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = ClientContextLifetime / 2 });
        return token;
    }

    private string Create(string audience, string type, Dictionary<string, object> claims, TimeSpan lifetime)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            TokenType = type,
            Issuer = ShopAuthentication.Issuer,
            Audience = audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + lifetime,
            Claims = claims,
            SigningCredentials = _credentials,
        });
    }
}
