using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using ShopReference.RateLimit.Auth;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>Who a request counts against: a known API client, else its network address; and whether it came over https.</summary>
public readonly record struct ClientIdentity(string Partition, bool IsApiClient, bool IsHttps = false);

/// <summary>
/// Turns request headers into a bounded partition id, never into raw key material. A client is known by its
/// <c>X-Api-Key</c> or by an access token the gateway issued (<c>Authorization: Bearer</c>); a malformed key is a 400, an
/// unknown key or an invalid token a 401 (inventing keys must not buy fresh quota). Anyone else is known by the address
/// <see cref="TrustedProxies"/> resolved (<c>X-Forwarded-For</c> counts only from a trusted proxy). IPv6 clients are
/// grouped by /64, since one host commonly holds a whole /64.
/// </summary>
public sealed class ClientIdentityResolver
{
    public const string ApiKeyHeader = "X-Api-Key";
    private readonly ApiClientRegistry _clients;

    public ClientIdentityResolver(ApiClientRegistry clients)
    {
        _clients = clients;
    }

    /// <summary>True when the request presents a credential (a key or a bearer token) that the gateway must check.</summary>
    public static bool PresentsCredential(HttpContext context) =>
        context.Request.Headers.ContainsKey(ApiKeyHeader) || PresentsBearer(context);

    /// <summary>An <c>Authorization: Bearer …</c> header (Basic is the token endpoint's business, not a credential here).</summary>
    public static bool PresentsBearer(HttpContext context) =>
        context.Request.Headers.Authorization is { Count: > 0 } authorization &&
        authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The identity, or the problem (status and detail) that refuses the request. <paramref name="bearer"/> is the
    /// result of authenticating the request's bearer token, when it has one.
    /// </summary>
    public (ClientIdentity? Identity, int Status, string? Problem) Resolve(HttpContext context, AuthenticateResult? bearer = null)
    {
        var https = IsHttps(context);
        var keys = context.Request.Headers[ApiKeyHeader];
        if (keys.Count > 0)
        {
            var key = keys.Count == 1 ? keys[0] : null;
            if (!ApiClientRegistry.IsWellFormed(key))
            {
                return (null, StatusCodes.Status400BadRequest, $"{ApiKeyHeader} must be one value of 16-128 characters: letters, digits, '-' or '_'.");
            }
            return _clients.FindByKey(key!) is not { } client
                ? (null, StatusCodes.Status401Unauthorized, $"The {ApiKeyHeader} is not known.")
                : SimulatedShopper(context, client) is { } shopper
                    ? shopper.Problem is null ? (new ClientIdentity(shopper.Partition!, IsApiClient: false, https), 0, null) : (null, StatusCodes.Status400BadRequest, shopper.Problem)
                    : (new ClientIdentity("key-" + client.Name, IsApiClient: true, https), 0, null);
        }
        if (PresentsBearer(context))
        {
            return bearer is { Succeeded: true } && bearer.Principal.FindFirst("client_id")?.Value is { } clientId
                ? (new ClientIdentity("key-" + clientId, IsApiClient: true, https), 0, null)
                : (null, StatusCodes.Status401Unauthorized, "The bearer token is not valid (expired, altered, or not issued by this gateway).");
        }
        return (new ClientIdentity("ip-" + Describe(ClientAddress(context)), IsApiClient: false, https), 0, null);
    }

    /// <summary>
    /// A client with the permission <see cref="ShoppersPermission"/> (the dashboard's shopper simulation) may speak for up
    /// to <see cref="MaxShoppers"/> simulated shoppers, one per <c>X-Shopper</c> number: each is counted as an anonymous
    /// visitor of its own (its own anonymous quotas, its own visitor id), as real shoppers behind distinct addresses
    /// would be. Only that key can do it and the set is bounded, so it buys no unbounded quota; from anyone else the
    /// header means nothing. Null when the request does not use it.
    /// </summary>
    private static (string? Partition, string? Problem)? SimulatedShopper(HttpContext context, (string Name, ApiClient Client) client)
    {
        if (!client.Client.Permissions.Contains(ShoppersPermission) || !context.Request.Headers.TryGetValue(ShopperHeader, out var values))
        {
            return null;
        }
        return values.Count == 1 && int.TryParse(values[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= MaxShoppers
            ? ($"shopper-{client.Name}-{n}", null)
            : (null, $"{ShopperHeader} must be one number from 1 to {MaxShoppers}.");
    }

    public const string ShoppersPermission = Microsoft.Extensions.Hosting.Permissions.Shoppers;
    public const string ShopperHeader = "X-Shopper";
    public const int MaxShoppers = 64;

    /// <summary>The client's address as this gateway sees it (the nearest untrusted hop), for quotas and failure counts.</summary>
    public string AddressOf(HttpContext context) => Describe(ClientAddress(context));

    // The address and scheme as the forwarded-headers middleware left them (TrustedProxies): the client's, when a
    // trusted proxy forwarded the request, else the connection's own.
    private static bool IsHttps(HttpContext context) => context.Request.IsHttps;

    private static IPAddress ClientAddress(HttpContext context) => Normalize(context.Connection.RemoteIpAddress ?? IPAddress.Loopback);

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
