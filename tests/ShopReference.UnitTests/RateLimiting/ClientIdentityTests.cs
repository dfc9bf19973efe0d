using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ShopReference.RateLimit.Auth;
using ShopReference.RateLimit.RateLimiting;

namespace ShopReference.UnitTests.RateLimiting;

/// <summary>
/// How the gateway decides who a request counts against (the forwarded-headers middleware as the gateway configures it,
/// then the resolver); headers never become unbounded partitions.
/// </summary>
public sealed class ClientIdentityTests
{
    private const string Proxy = "10.0.0.5";
    private static readonly string KnownKey = "partner-key-0123456789";

    private static ClientIdentityResolver Resolver() => new(
        new ApiClientRegistry(Options.Create(new ApiClientsOptions
        {
            Clients = { ["partner"] = new ApiClient { KeyHash = ApiClientRegistry.HashKey(KnownKey) } },
        })));

    // A request as the resolver sees it: after the gateway's first middleware has read the forwarded headers.
    private static DefaultHttpContext Request(string remote, string? forwardedFor = null, string? apiKey = null, string? forwardedProto = null,
        string[]? trusted = null)
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse(remote);
        if (forwardedFor is not null) context.Request.Headers["X-Forwarded-For"] = forwardedFor;
        if (forwardedProto is not null) context.Request.Headers["X-Forwarded-Proto"] = forwardedProto;
        if (apiKey is not null) context.Request.Headers["X-Api-Key"] = apiKey;
        if (TrustedProxies.Options(trusted ?? [Proxy, "172.16.0.0/12"]) is { } options) // as UseTrustedProxies does
        {
            new ForwardedHeadersMiddleware(_ => Task.CompletedTask, NullLoggerFactory.Instance, Options.Create(options))
                .Invoke(context).GetAwaiter().GetResult(); // synchronous: it only reads headers
        }
        return context;
    }

    [Fact]
    public void A_proxy_in_a_trusted_network_is_believed_and_its_https_counts()
    {
        var (identity, _, _) = Resolver().Resolve(Request("172.20.1.9", forwardedFor: "198.51.100.1", forwardedProto: "https"));

        Assert.Equal(("ip-198.51.100.1", true), (identity!.Value.Partition, identity.Value.IsHttps));
    }

    [Fact]
    public void Https_claimed_by_an_untrusted_peer_is_not_believed()
    {
        var (identity, _, _) = Resolver().Resolve(Request("203.0.113.9", forwardedProto: "https"));

        Assert.False(identity!.Value.IsHttps);
    }

    [Fact]
    public void A_bearer_token_that_did_not_authenticate_is_a_401_and_never_a_partition()
    {
        var context = Request("203.0.113.9");
        context.Request.Headers.Authorization = "Bearer not.a.token";

        var (identity, refusal, _) = Resolver().Resolve(context, Microsoft.AspNetCore.Authentication.AuthenticateResult.Fail("bad signature"));

        Assert.Null(identity);
        Assert.Equal(401, refusal);
    }

    [Fact]
    public void A_forwarded_for_header_from_an_untrusted_peer_is_ignored()
    {
        var (identity, _, _) = Resolver().Resolve(Request("203.0.113.9", forwardedFor: "198.51.100.1"));

        Assert.Equal("ip-203.0.113.9", identity!.Value.Partition);
    }

    /// <summary>The middleware with no known proxy would believe every peer; with none configured, nobody is believed.</summary>
    [Fact]
    public void With_no_trusted_proxy_no_peer_s_forwarded_headers_are_believed()
    {
        var (identity, _, _) = Resolver().Resolve(Request("127.0.0.1", forwardedFor: "198.51.100.1", forwardedProto: "https", trusted: []));

        Assert.Equal(("ip-127.0.0.1", false), (identity!.Value.Partition, identity.Value.IsHttps));
    }

    [Fact]
    public void Behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client()
    {
        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: $"198.51.100.7, 192.0.2.44, {Proxy}"));

        Assert.Equal("ip-192.0.2.44", identity!.Value.Partition);
    }

    /// <summary>
    /// A trusted proxy appends the hop it saw on the right; whatever the client wrote to its left is never reached, and an
    /// entry that is not an address is never believed.
    /// </summary>
    [Theory]
    [InlineData("not-an-ip, 192.0.2.44", "192.0.2.44")]
    [InlineData("192.0.2.44; drop table", Proxy)]
    public void A_malformed_hop_is_never_believed(string header, string client)
    {
        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: header));

        Assert.Equal($"ip-{client}", identity!.Value.Partition);
    }

    [Fact]
    public void A_chain_of_trusted_hops_is_walked_no_further_than_the_forward_limit()
    {
        var forged = $"198.51.100.66, {string.Join(", ", Enumerable.Repeat(Proxy, TrustedProxies.ForwardLimit + 4))}";

        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: forged));

        Assert.Equal($"ip-{Proxy}", identity!.Value.Partition);
    }

    /// <summary>
    /// The scheme belongs to the hop the address was taken from: a client that prepends <c>https</c> to what the proxy
    /// appends (<c>http</c>, the scheme it really used) does not get https counted, and so no <c>Secure</c> cookie
    /// decision or https-only treatment from a header it wrote.
    /// </summary>
    [Fact]
    public void The_scheme_is_the_client_hop_s_own_not_the_leftmost_entry()
    {
        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: "203.0.113.1, 192.0.2.44", forwardedProto: "https, http"));

        Assert.Equal(("ip-192.0.2.44", false), (identity!.Value.Partition, identity.Value.IsHttps));
    }

    [Fact]
    public void IPv6_clients_are_grouped_by_their_64_bit_prefix()
    {
        var (first, _, _) = Resolver().Resolve(Request("2001:db8:1:2:aaaa::1"));
        var (second, _, _) = Resolver().Resolve(Request("2001:db8:1:2:bbbb::2"));

        Assert.Equal(first!.Value.Partition, second!.Value.Partition);
        Assert.Equal("ip-2001:db8:1:2::/64", first.Value.Partition);
    }

    [Fact]
    public void A_known_api_key_counts_against_its_client_and_never_appears_in_the_partition()
    {
        var (identity, _, _) = Resolver().Resolve(Request("203.0.113.9", apiKey: KnownKey));

        Assert.Equal(("key-partner", true), (identity!.Value.Partition, identity.Value.IsApiClient));
    }

    [Theory]
    [InlineData("short", 400)]
    [InlineData("spaces are not allowed here", 400)]
    [InlineData("well-formed-but-unknown-key", 401)]
    public void A_malformed_or_unknown_api_key_is_refused(string key, int status)
    {
        var (identity, refusal, problem) = Resolver().Resolve(Request("203.0.113.9", apiKey: key));

        Assert.Null(identity);
        Assert.Equal(status, refusal);
        Assert.False(string.IsNullOrEmpty(problem));
    }
}
