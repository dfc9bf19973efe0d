using ShopReference.RateLimit.Auth;

namespace ShopReference.RateLimit.Apis;

/// <summary>
/// What a validator needs to know of the token server, at the standard addresses: the discovery document (OpenID
/// Connect Discovery 1.0 / RFC 8414) and the public keys (RFC 7517). The services read them to validate tokens; they are
/// public by nature and outside <c>/api</c>, so no client's quota is spent on them.
/// </summary>
public static class DiscoveryApi
{
    public const string DiscoveryPath = "/.well-known/openid-configuration";
    public const string JwksPath = "/.well-known/jwks.json";

    public static IEndpointRouteBuilder MapDiscoveryApi(this IEndpointRouteBuilder app)
    {
        app.MapGet(DiscoveryPath, (HttpContext http) =>
        {
            // Addresses as the caller reached the gateway: inside the app that is its service-discovery address.
            var origin = $"{http.Request.Scheme}://{http.Request.Host}";
            return TypedResults.Json(new Dictionary<string, object>
            {
                ["issuer"] = ShopAuthentication.Issuer,
                ["jwks_uri"] = origin + JwksPath,
                ["token_endpoint"] = origin + "/api/auth/token",
                ["grant_types_supported"] = new[] { "client_credentials" },
                ["token_endpoint_auth_methods_supported"] = new[] { "client_secret_basic", "client_secret_post" },
                ["scopes_supported"] = Permissions.All.Order(StringComparer.Ordinal).ToArray(),
                ["id_token_signing_alg_values_supported"] = new[] { IssuerSigningKey.Algorithm },
                ["response_types_supported"] = new[] { "token" },
                ["subject_types_supported"] = new[] { "public" },
            });
        }).ExcludeFromDescription();
        app.MapGet(JwksPath, (TokenIssuer issuer) => TypedResults.Text(issuer.Jwks, "application/jwk-set+json"))
            .ExcludeFromDescription();
        return app;
    }
}
