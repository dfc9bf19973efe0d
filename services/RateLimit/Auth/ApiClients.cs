using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace ShopReference.RateLimit.Auth;

/// <summary>
/// One known API client: its key, given either as <see cref="Key"/> (a secret parameter; hashed at start and then
/// forgotten) or as <see cref="KeySha256"/> (the key itself never configured), and its permissions.
/// </summary>
public sealed class ApiClient
{
    /// <summary>Lower-case hex SHA-256 of the client's key.</summary>
    public string KeySha256 { get; set; } = "";

    /// <summary>The key itself; at start it becomes <see cref="KeySha256"/> and is cleared.</summary>
    public string? Key { get; set; }

    /// <summary>Permissions its access tokens may carry (<see cref="Microsoft.Extensions.Hosting.Permissions"/>); none for a read-only partner.</summary>
    public List<string> Permissions { get; set; } = [];
}

/// <summary>The gateway's API clients (section <c>Clients</c>: name → <see cref="ApiClient"/>), validated at start.</summary>
public sealed partial class ApiClientsOptions : IValidatableObject
{
    public const string Section = "Clients";

    public Dictionary<string, ApiClient> Clients { get; set; } = new(StringComparer.Ordinal);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var (name, client) in Clients)
        {
            if (client.Key is not null)
            {
                yield return new($"Client '{name}': its key must be 16-128 letters, digits, '-' or '_', and given once (Key or KeySha256).", [nameof(Clients)]);
            }
            if (!ClientName().IsMatch(name) || !Sha256Hex().IsMatch(client.KeySha256))
            {
                yield return new($"Client '{name}' needs a 1-32 character name (a-z, 0-9, '-') and KeySha256, a 64-character lowercase hex SHA-256.", [nameof(Clients)]);
            }
            foreach (var permission in client.Permissions.Where(p => !Microsoft.Extensions.Hosting.Permissions.All.Contains(p)))
            {
                yield return new($"Client '{name}': unknown permission '{permission}'.", [nameof(Clients)]);
            }
        }
        if (Clients.Values.Select(c => c.KeySha256).Distinct(StringComparer.Ordinal).Count() != Clients.Count)
        {
            yield return new("Two clients share one key.", [nameof(Clients)]);
        }
    }

    /// <summary>Turns each configured <see cref="ApiClient.Key"/> into its digest; a malformed key is left for validation to refuse.</summary>
    public void HashKeys()
    {
        foreach (var client in Clients.Values)
        {
            if (client.Key is { } key && ApiClientRegistry.IsWellFormed(key) && client.KeySha256.Length == 0)
            {
                client.KeySha256 = ApiClientRegistry.HashKey(key);
                client.Key = null;
            }
        }
    }

    [GeneratedRegex("^[a-z0-9-]{1,32}$")]
    private static partial Regex ClientName();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Hex();
}

/// <summary>
/// Looks a presented key up among the configured clients. Only SHA-256 digests are kept and compared (in constant
/// time for a named client), so neither configuration nor a memory dump holds a usable key.
/// </summary>
public sealed class ApiClientRegistry
{
    private readonly Dictionary<string, (string Name, ApiClient Client)> _byKeyHash;
    private readonly Dictionary<string, ApiClient> _byName;

    public ApiClientRegistry(IOptions<ApiClientsOptions> options)
    {
        _byName = new Dictionary<string, ApiClient>(options.Value.Clients, StringComparer.Ordinal);
        _byKeyHash = _byName.ToDictionary(c => c.Value.KeySha256, c => (c.Key, c.Value), StringComparer.Ordinal);
    }

    /// <summary>A key is 16-128 characters of letters, digits, '-' and '_': anything else is refused before it is hashed.</summary>
    public static bool IsWellFormed(string? key) =>
        key is { Length: >= 16 and <= 128 } && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    public static string HashKey(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>The client whose key this is (<c>X-Api-Key</c>), or null.</summary>
    public (string Name, ApiClient Client)? FindByKey(string key) =>
        _byKeyHash.TryGetValue(HashKey(key), out var found) ? found : null;

    /// <summary>The named client if <paramref name="secret"/> is its key (OAuth client credentials), else null.</summary>
    public ApiClient? Authenticate(string clientId, string secret)
    {
        if (!_byName.TryGetValue(clientId, out var client) || !IsWellFormed(secret))
        {
            return null;
        }
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
        return CryptographicOperations.FixedTimeEquals(presented, Convert.FromHexString(client.KeySha256)) ? client : null;
    }
}
