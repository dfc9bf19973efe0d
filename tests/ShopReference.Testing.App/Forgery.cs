using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ShopReference.Testing;

/// <summary>Tokens the gateway did not issue: signed with a wrong key, expired, or for another audience.</summary>
public static class Forgery
{
    public static string Token(string signingKey, string audience, params (string Name, object Value)[] claims) =>
        Token(signingKey, audience, DateTime.UtcNow.AddMinutes(5), claims);

    public static string Token(string signingKey, string audience, DateTime expires, params (string Name, object Value)[] claims) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "shopreference-gateway",
            Audience = audience,
            IssuedAt = expires.AddMinutes(-10),
            NotBefore = expires.AddMinutes(-10),
            Expires = expires,
            Claims = claims.ToDictionary(c => c.Name, c => c.Value),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(signingKey)), SecurityAlgorithms.HmacSha256),
        });
}
