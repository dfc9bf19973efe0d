using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using ShopReference.Testing;

namespace ShopReference.UnitTests.Platform;

/// <summary>The issuer's key pair derived from its secret: the public point it computes is the platform's, and only that point is published.</summary>
public sealed class IssuerSigningKeyTests
{
    [Fact]
    public void The_derived_public_key_is_the_one_the_platform_derives_and_the_published_set_holds_no_private_part()
    {
        var kids = new HashSet<string>();
        for (var i = 0; i < 20; i++)
        {
            var secret = Secrets.NewPassword(64);
            var key = IssuerSigningKey.FromSecret(secret);
            var mine = key.ECDsa.ExportParameters(includePrivateParameters: true);
            // OpenSSL derives Q from D by itself (this platform does; not every one does, which is why the code does it).
            using var platform = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = mine.D });
            var theirs = platform.ExportParameters(includePrivateParameters: false).Q;

            Assert.Equal(theirs.X, mine.Q.X);
            Assert.Equal(theirs.Y, mine.Q.Y);
            Assert.Equal(key.KeyId, IssuerSigningKey.FromSecret(secret).KeyId); // the same secret, the same key id
            Assert.True(kids.Add(key.KeyId));
            var data = new byte[] { 1, 2, 3 };
            Assert.True(platform.VerifyData(data, key.ECDsa.SignData(data, HashAlgorithmName.SHA256), HashAlgorithmName.SHA256));

            var published = JsonDocument.Parse(IssuerSigningKey.Jwks([key])).RootElement.GetProperty("keys")[0];
            Assert.Equal(["kty", "use", "alg", "kid", "crv", "x", "y"], published.EnumerateObject().Select(p => p.Name));
        }
    }

    [Fact]
    public void A_short_or_missing_secret_is_refused_at_start()
    {
        Assert.Throws<InvalidOperationException>(() => IssuerSigningKey.FromSecret(null));
        Assert.Throws<InvalidOperationException>(() => IssuerSigningKey.FromSecret(new string('a', IssuerSigningKey.MinimumSecretLength - 1)));
    }
}
