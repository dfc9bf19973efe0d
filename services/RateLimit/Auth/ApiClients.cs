using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace ShopReference.RateLimit.Auth;

/// <summary>
/// One known API client: its key, given either as <see cref="Key"/> (a secret parameter; digested at start and then
/// forgotten) or as <see cref="KeyHash"/> (the key itself never configured), and its permissions.
/// </summary>
public sealed class ApiClient
{
    /// <summary>
    /// The key's salted digest, <c>sha256:{salt}:{digest}</c> (lower-case hex; 16 bytes of salt, SHA-256 of salt then
    /// key), which <see cref="ApiClientRegistry.HashKey"/> makes. A salt per client means one key never digests to one
    /// value twice: equal keys of two clients or two deployments do not show as equal digests.
    /// </summary>
    public string KeyHash { get; set; } = "";

    /// <summary>The key itself; at start it becomes <see cref="KeyHash"/> and is cleared.</summary>
    public string? Key { get; set; }

    /// <summary>Permissions its access tokens may carry (<see cref="Microsoft.Extensions.Hosting.Permissions"/>); none for a read-only partner.</summary>
    public List<string> Permissions { get; set; } = [];

    internal byte[] Salt { get; private set; } = [];
    internal byte[] Digest { get; private set; } = [];

    /// <summary>Reads <see cref="KeyHash"/>; false when it is not of the form <c>sha256:{32 hex}:{64 hex}</c>.</summary>
    internal bool TryParseKeyHash()
    {
        var parts = KeyHash.Split(':');
        if (parts is not ["sha256", { Length: 32 } salt, { Length: 64 } digest] || !IsLowerHex(salt) || !IsLowerHex(digest))
        {
            return false;
        }
        (Salt, Digest) = (Convert.FromHexString(salt), Convert.FromHexString(digest));
        return true;
    }

    private static bool IsLowerHex(string text) => text.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));
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
                yield return new($"Client '{name}': its key must be 16-128 letters, digits, '-' or '_', and given once (Key or KeyHash).", [nameof(Clients)]);
            }
            if (!ClientName().IsMatch(name) || !client.TryParseKeyHash())
            {
                yield return new($"Client '{name}' needs a 1-32 character name (a-z, 0-9, '-') and KeyHash, sha256:{{salt}}:{{digest}} in lowercase hex.", [nameof(Clients)]);
            }
            foreach (var permission in client.Permissions.Where(p => !Microsoft.Extensions.Hosting.Permissions.All.Contains(p)))
            {
                yield return new($"Client '{name}': unknown permission '{permission}'.", [nameof(Clients)]);
            }
        }
        if (_sharedKey)
        {
            yield return new("Two clients share one key.", [nameof(Clients)]);
        }
    }

    private bool _sharedKey;

    /// <summary>
    /// Turns each configured <see cref="ApiClient.Key"/> into its salted digest; a malformed key is left for validation
    /// to refuse. Two clients given one key are found here, while the keys are still at hand.
    /// </summary>
    public void HashKeys()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var client in Clients.Values)
        {
            if (client.Key is { } key && ApiClientRegistry.IsWellFormed(key) && client.KeyHash.Length == 0)
            {
                _sharedKey |= !keys.Add(key);
                client.KeyHash = ApiClientRegistry.HashKey(key);
                client.Key = null;
            }
        }
    }

    [GeneratedRegex("^[a-z0-9-]{1,32}$")]
    private static partial Regex ClientName();

}

/// <summary>
/// Looks a presented key up among the configured clients. Only salted SHA-256 digests are kept, and a presented key is
/// compared with every client's in constant time, so neither configuration nor a memory dump holds a usable key, and
/// the time taken does not say which client (if any) was close. The keys are random and at least 16 characters (about
/// 96 bits), so a fast hash suffices: a slow one (PBKDF2, Argon2) defends guessable passwords and would cost every
/// request that carries <c>X-Api-Key</c>.
/// </summary>
public sealed class ApiClientRegistry
{
    private readonly (string Name, ApiClient Client)[] _clients;
    private readonly Dictionary<string, ApiClient> _byName;

    public ApiClientRegistry(IOptions<ApiClientsOptions> options)
    {
        _byName = new Dictionary<string, ApiClient>(options.Value.Clients, StringComparer.Ordinal);
        foreach (var client in _byName.Values)
        {
            if (!client.TryParseKeyHash())
            {
                throw new InvalidOperationException("An API client without a valid KeyHash reached the registry; options validation should have refused it.");
            }
        }
        _clients = [.. _byName.Select(c => (c.Key, c.Value))];
    }

    /// <summary>A key is 16-128 characters of letters, digits, '-' and '_': anything else is refused before it is hashed.</summary>
    public static bool IsWellFormed(string? key) =>
        key is { Length: >= 16 and <= 128 } && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>The salted digest of <paramref name="key"/> for <see cref="ApiClient.KeyHash"/>, with a fresh random salt.</summary>
    public static string HashKey(string key)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        return $"sha256:{Convert.ToHexStringLower(salt)}:{Convert.ToHexStringLower(Digest(salt, key))}";
    }

    /// <summary>The client whose key this is (<c>X-Api-Key</c>), or null.</summary>
    public (string Name, ApiClient Client)? FindByKey(string key)
    {
        (string Name, ApiClient Client)? found = null;
        foreach (var entry in _clients) // every one, found or not: the time does not depend on which
        {
            if (Matches(entry.Client, key))
            {
                found = entry;
            }
        }
        return found;
    }

    /// <summary>The named client if <paramref name="secret"/> is its key (OAuth client credentials), else null.</summary>
    public ApiClient? Authenticate(string clientId, string secret) =>
        _byName.TryGetValue(clientId, out var client) && IsWellFormed(secret) && Matches(client, secret) ? client : null;

    private static bool Matches(ApiClient client, string key) =>
        CryptographicOperations.FixedTimeEquals(Digest(client.Salt, key), client.Digest);

    private static byte[] Digest(byte[] salt, string key)
    {
        var input = new byte[salt.Length + Encoding.UTF8.GetByteCount(key)];
        salt.CopyTo(input, 0);
        Encoding.UTF8.GetBytes(key, input.AsSpan(salt.Length));
        return SHA256.HashData(input);
    }
}
