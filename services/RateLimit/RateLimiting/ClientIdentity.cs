using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>Who a request counts against: a known API client, else its network address.</summary>
public readonly record struct ClientIdentity(string Partition, bool IsApiClient);

/// <summary>
/// Turns request headers into a bounded partition id, never into raw key material. A malformed API key is a 400,
/// an unknown one a 401 (inventing keys must not buy fresh quota). <c>X-Forwarded-For</c> counts only when the
/// connection comes from a trusted proxy, and a malformed or oversized one is ignored. IPv6 clients are grouped
/// by /64, since one host commonly holds a whole /64.
/// </summary>
public sealed class ClientIdentityResolver
{
    public const string ApiKeyHeader = "X-Api-Key";
    private const int MaxForwardedForLength = 1024;
    private readonly Dictionary<string, string> _clientsByKeyHash;
    private readonly HashSet<IPAddress> _trustedProxies;

    public ClientIdentityResolver(IOptions<GatewayRateLimitOptions> options)
    {
        _clientsByKeyHash = options.Value.ApiKeys.ToDictionary(entry => entry.Value, entry => entry.Key, StringComparer.Ordinal);
        _trustedProxies = [.. options.Value.TrustedProxies.Select(p => Normalize(IPAddress.Parse(p)))];
    }

    public static string HashKey(string apiKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));

    /// <summary>The identity, or the problem (status and detail) that refuses the request.</summary>
    public (ClientIdentity? Identity, int Status, string? Problem) Resolve(HttpContext context)
    {
        var keys = context.Request.Headers[ApiKeyHeader];
        if (keys.Count > 0)
        {
            var key = keys.Count == 1 ? keys[0] : null;
            if (key is null || key.Length is < 16 or > 128 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return (null, StatusCodes.Status400BadRequest, $"{ApiKeyHeader} must be one value of 16-128 characters: letters, digits, '-' or '_'.");
            }
            return _clientsByKeyHash.TryGetValue(HashKey(key), out var client)
                ? (new ClientIdentity("key-" + client, IsApiClient: true), 0, null)
                : (null, StatusCodes.Status401Unauthorized, $"The {ApiKeyHeader} is not known.");
        }
        return (new ClientIdentity("ip-" + Describe(ClientAddress(context)), IsApiClient: false), 0, null);
    }

    private IPAddress ClientAddress(HttpContext context)
    {
        var remote = Normalize(context.Connection.RemoteIpAddress ?? IPAddress.Loopback);
        if (!_trustedProxies.Contains(remote))
        {
            return remote;
        }
        var header = string.Join(',', context.Request.Headers["X-Forwarded-For"].ToArray());
        if (header.Length is 0 or > MaxForwardedForLength)
        {
            return remote;
        }
        var entries = header.Split(',', StringSplitOptions.TrimEntries);
        var hops = new IPAddress[entries.Length];
        for (var i = 0; i < entries.Length; i++)
        {
            if (!IPAddress.TryParse(entries[i], out var hop))
            {
                return remote; // a malformed chain is ignored as a whole, not trusted up to the bad entry
            }
            hops[i] = Normalize(hop);
        }
        // Right to left: the nearest hop that is not one of our proxies is the client.
        for (var i = hops.Length - 1; i >= 0; i--)
        {
            if (!_trustedProxies.Contains(hops[i]))
            {
                return hops[i];
            }
        }
        return remote;
    }

    private static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static string Describe(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }
}
