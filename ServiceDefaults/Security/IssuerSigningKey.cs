using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The token server's key pair: ECDSA on P-256 (ES256), derived from a secret that only the gateway is given
/// (<c>Auth:SigningKey</c>), so the one random parameter an AppHost or a deployment generates is all it takes. The
/// services are never given the secret: they validate with the public half, which the gateway publishes as a JSON Web
/// Key Set. Whoever holds a service's whole configuration can therefore verify tokens but not make one.
/// </summary>
public static class IssuerSigningKey
{
    public const string Algorithm = SecurityAlgorithms.EcdsaSha256;
    public const int MinimumSecretLength = 32;

    // P-256 (FIPS 186-4, D.1.2.3): field prime, order, base point.
    private static readonly BigInteger P = Parse("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    private static readonly BigInteger N = Parse("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    private static readonly (BigInteger X, BigInteger Y) G =
        (Parse("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"), Parse("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"));

    /// <summary>The key pair derived from <paramref name="secret"/>, its key id the RFC 7638 thumbprint of the public key.</summary>
    public static ECDsaSecurityKey FromSecret(string? secret, string settingName = "Auth:SigningKey")
    {
        if (string.IsNullOrEmpty(secret) || secret.Length < MinimumSecretLength)
        {
            throw new InvalidOperationException($"{settingName} must be a secret of at least {MinimumSecretLength} characters (the AppHost passes its 'auth-signing-key' parameter to the gateway alone).");
        }
        // The private scalar is a hash of the secret under a label; in the rare case (about 2^-32) that it is not a valid
        // scalar below the curve's order, it is hashed again.
        var d = SHA256.HashData(Encoding.UTF8.GetBytes("shopreference-issuer-es256:" + secret));
        while (new BigInteger(d, isUnsigned: true, isBigEndian: true) is var scalar && (scalar.IsZero || scalar >= N))
        {
            d = SHA256.HashData(d);
        }
        // The public point is computed here rather than left to the platform: not every platform's ImportParameters
        // derives it from D alone.
        var (x, y) = Multiply(new BigInteger(d, isUnsigned: true, isBigEndian: true), G);
        var ecdsa = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            D = d,
            Q = new ECPoint { X = Bytes32(x), Y = Bytes32(y) },
        });
        return new ECDsaSecurityKey(ecdsa) { KeyId = Thumbprint(ecdsa) };
    }

    /// <summary>
    /// A JSON Web Key Set (RFC 7517) of the public halves of <paramref name="keys"/>: what the gateway publishes at
    /// <c>/.well-known/jwks.json</c>, and what a service may be given as <c>Auth:Jwks</c> to pin them.
    /// </summary>
    public static string Jwks(IEnumerable<ECDsaSecurityKey> keys) => JsonSerializer.Serialize(new
    {
        keys = keys.Select(key =>
        {
            var point = key.ECDsa.ExportParameters(includePrivateParameters: false).Q; // never D
            return new Dictionary<string, string>
            {
                ["kty"] = "EC", ["use"] = "sig", ["alg"] = Algorithm, ["kid"] = key.KeyId, ["crv"] = "P-256",
                ["x"] = Base64UrlEncoder.Encode(point.X), ["y"] = Base64UrlEncoder.Encode(point.Y),
            };
        }),
    });

    // RFC 7638: SHA-256 over the required members in lexicographic order, without whitespace.
    private static string Thumbprint(ECDsa ecdsa)
    {
        var q = ecdsa.ExportParameters(includePrivateParameters: false).Q;
        var canonical = $$"""{"crv":"P-256","kty":"EC","x":"{{Base64UrlEncoder.Encode(q.X)}}","y":"{{Base64UrlEncoder.Encode(q.Y)}}"}""";
        return Base64UrlEncoder.Encode(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }

    // Scalar multiplication by double-and-add in affine coordinates: run once per process, at start.
    private static (BigInteger X, BigInteger Y) Multiply(BigInteger k, (BigInteger X, BigInteger Y) point)
    {
        (BigInteger X, BigInteger Y)? result = null;
        var addend = point;
        for (; !k.IsZero; k >>= 1)
        {
            if (!k.IsEven)
            {
                result = result is { } r ? Add(r, addend) : addend;
            }
            addend = Add(addend, addend);
        }
        return result ?? throw new ArgumentOutOfRangeException(nameof(k));
    }

    // Never reaches the point at infinity for a scalar below the order, so that case is not handled.
    private static (BigInteger X, BigInteger Y) Add((BigInteger X, BigInteger Y) a, (BigInteger X, BigInteger Y) b)
    {
        var slope = a == b
            ? Mod(3 * (a.X * a.X - 1) * Inverse(2 * a.Y)) // the curve's a is -3: 3x² + a = 3(x² - 1)
            : Mod((b.Y - a.Y) * Inverse(b.X - a.X));
        var x = Mod(slope * slope - a.X - b.X);
        return (x, Mod(slope * (a.X - x) - a.Y));
    }

    private static BigInteger Inverse(BigInteger value) => BigInteger.ModPow(Mod(value), P - 2, P);

    private static BigInteger Mod(BigInteger value) => (value % P + P) % P;

    private static BigInteger Parse(string hex) => new(Convert.FromHexString(hex), isUnsigned: true, isBigEndian: true);

    private static byte[] Bytes32(BigInteger value)
    {
        var bytes = value.ToByteArray(isUnsigned: true, isBigEndian: true);
        return bytes.Length == 32 ? bytes : [.. new byte[32 - bytes.Length], .. bytes];
    }
}
