using Microsoft.Extensions.Hosting;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ShopReference.Testing;

/// <summary>
/// Tokens made outside the gateway, signed as the gateway would sign them with the key pair derived from
/// <paramref name="signingSecret"/>: with the gateway's own secret (which only the gateway and the test know) to make an
/// expired token or one for another audience, with any other secret to make one signed by a key nobody published.
/// </summary>
public static class Forgery
{
    public static string Token(string signingSecret, string audience, params (string Name, object Value)[] claims) =>
        Token(signingSecret, audience, DateTime.UtcNow.AddMinutes(5), claims);

    public static string Token(string signingSecret, string audience, DateTime expires, params (string Name, object Value)[] claims) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            TokenType = audience == ShopAuthentication.ClientContextAudience ? ShopAuthentication.ClientContextType : ShopAuthentication.AccessTokenType,
            Issuer = ShopAuthentication.Issuer,
            Audience = audience,
            IssuedAt = expires.AddMinutes(-10),
            NotBefore = expires.AddMinutes(-10),
            Expires = expires,
            Claims = claims.ToDictionary(c => c.Name, c => c.Value),
            SigningCredentials = new SigningCredentials(IssuerSigningKey.FromSecret(signingSecret), IssuerSigningKey.Algorithm),
        });

    /// <summary>
    /// An HS256 token keyed with <paramref name="secret"/>'s bytes (their SHA-256 when shorter than the 32 bytes HS256
    /// takes), under key id <paramref name="kid"/> (none when empty).
    /// </summary>
    public static string HmacToken(string secret, string kid, string audience, params (string Name, object Value)[] claims) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            TokenType = ShopAuthentication.AccessTokenType,
            Issuer = ShopAuthentication.Issuer,
            Audience = audience,
            IssuedAt = DateTime.UtcNow.AddMinutes(-1),
            NotBefore = DateTime.UtcNow.AddMinutes(-1),
            Expires = DateTime.UtcNow.AddMinutes(5),
            Claims = claims.ToDictionary(c => c.Name, c => c.Value),
            SigningCredentials = new SigningCredentials(
                new SymmetricSecurityKey(HmacKey(secret)) { KeyId = kid.Length == 0 ? null : kid }, SecurityAlgorithms.HmacSha256),
        });

    private static byte[] HmacKey(string secret)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(secret);
        return bytes.Length >= 32 ? bytes : System.Security.Cryptography.SHA256.HashData(bytes);
    }
}
