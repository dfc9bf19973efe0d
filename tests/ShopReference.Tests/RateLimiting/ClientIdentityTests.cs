using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using ShopReference.RateLimit.Auth;
using ShopReference.RateLimit.RateLimiting;

namespace ShopReference.Tests.RateLimiting;

/// <summary>How the gateway decides who a request counts against; headers never become unbounded partitions.</summary>
public sealed class ClientIdentityTests
{
    private const string Proxy = "10.0.0.5";
    private static readonly string KnownKey = "partner-key-0123456789";

    private static ClientIdentityResolver Resolver() => new(
        Options.Create(new GatewayRateLimitOptions { TrustedProxies = [Proxy, "172.16.0.0/12"] }),
        new ApiClientRegistry(Options.Create(new ApiClientsOptions
        {
            Clients = { ["partner"] = new ApiClient { KeySha256 = ApiClientRegistry.HashKey(KnownKey) } },
        })));

    private static DefaultHttpContext Request(string remote, string? forwardedFor = null, string? apiKey = null, string? forwardedProto = null)
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse(remote);
        if (forwardedFor is not null) context.Request.Headers["X-Forwarded-For"] = forwardedFor;
        if (forwardedProto is not null) context.Request.Headers["X-Forwarded-Proto"] = forwardedProto;
        if (apiKey is not null) context.Request.Headers["X-Api-Key"] = apiKey;
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

    [Fact]
    public void Behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client()
    {
        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: $"198.51.100.7, 192.0.2.44, {Proxy}"));

        Assert.Equal("ip-192.0.2.44", identity!.Value.Partition);
    }

    [Theory]
    [InlineData("not-an-ip, 192.0.2.44")]
    [InlineData("192.0.2.44; drop table")]
    public void A_malformed_forwarded_chain_is_ignored_as_a_whole(string header)
    {
        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: header));

        Assert.Equal($"ip-{Proxy}", identity!.Value.Partition);
    }

    [Fact]
    public void An_oversized_forwarded_header_is_ignored()
    {
        var header = string.Join(", ", Enumerable.Repeat("192.0.2.44", 200));

        var (identity, _, _) = Resolver().Resolve(Request(Proxy, forwardedFor: header));

        Assert.Equal($"ip-{Proxy}", identity!.Value.Partition);
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
