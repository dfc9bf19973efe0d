using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace ShopReference.RateLimit.Auth;

/// <summary>The secret the gateway keys visitor ids with (<c>Auth:VisitorKey</c>, the AppHost's <c>visitor-id-key</c>).</summary>
public sealed class VisitorIdOptions
{
    public const string Setting = "Auth:VisitorKey";
    public const int MinimumKeyLength = 32;

    public string? Key { get; set; }
}

/// <summary>
/// The visitor id the gateway puts in its client context: an HMAC-SHA256 of the identity the limiter counted (a client
/// address, a simulated shopper), keyed with a secret only the gateway holds, cut to 96 bits. An unkeyed hash of an
/// address is no pseudonym: the whole IPv4 space hashes in minutes, so anyone who reads the event stream, the outbox or
/// the uniques would read addresses back. Without the key nobody can compute the id of a given address, and the id
/// stays the same for as long as the key does, so unique visitors count as before.
/// </summary>
public sealed class VisitorIds(IOptions<VisitorIdOptions> options)
{
    private readonly byte[] _key = Encoding.UTF8.GetBytes(options.Value.Key ?? "");

    /// <summary>24 lowercase hex characters (a valid visitor id of the event contract).</summary>
    public string For(string identity) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(identity)))[..24];

    /// <summary>Binds and checks the key at start: a gateway without one would hand out ids anyone can compute.</summary>
    public static void AddTo(IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<VisitorIdOptions>()
            .Configure(options => options.Key = configuration[VisitorIdOptions.Setting])
            .Validate(options => options.Key is { Length: >= VisitorIdOptions.MinimumKeyLength },
                $"{VisitorIdOptions.Setting} must be a secret of at least {VisitorIdOptions.MinimumKeyLength} characters (the AppHost passes its 'visitor-id-key' parameter to the gateway alone).")
            .ValidateOnStart();
        services.AddSingleton<VisitorIds>();
    }
}
