using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using ShopReference.RateLimit.Auth;

namespace ShopReference.UnitTests.RateLimiting;

/// <summary>
/// What the gateway keeps of a client's key: a digest salted per client, never the key, compared with every client's
/// in constant time; a configuration from before salting is refused at start by name, not read as no key.
/// </summary>
public sealed class ApiClientKeyTests
{
    private const string PartnerKey = "partner-key-0123456789";
    private const string AdminKey = "admin-key-9876543210ab";

    [Fact]
    public void One_key_digests_to_a_different_value_each_time_and_each_digest_recognises_only_that_key()
    {
        var first = ApiClientRegistry.HashKey(PartnerKey);
        var second = ApiClientRegistry.HashKey(PartnerKey);

        Assert.NotEqual(first, second); // salted: equal keys do not show as equal digests
        Assert.Matches("^sha256:[0-9a-f]{32}:[0-9a-f]{64}$", first);
        Assert.DoesNotContain(PartnerKey, first);
        foreach (var digest in new[] { first, second })
        {
            var registry = Registry(("partner", digest), ("admin", ApiClientRegistry.HashKey(AdminKey)));
            Assert.Equal("partner", registry.FindByKey(PartnerKey)?.Name);
            Assert.Equal("admin", registry.FindByKey(AdminKey)?.Name);
            Assert.Null(registry.FindByKey(PartnerKey + "x"));
            Assert.NotNull(registry.Authenticate("partner", PartnerKey));
            Assert.Null(registry.Authenticate("admin", PartnerKey)); // a key is its own client's only
        }
    }

    [Fact]
    public void A_configured_key_is_replaced_by_its_digest_at_start_and_two_clients_with_one_key_are_refused()
    {
        var options = new ApiClientsOptions
        {
            Clients =
            {
                ["partner"] = new ApiClient { Key = PartnerKey },
                ["admin"] = new ApiClient { Key = AdminKey, Permissions = ["operator"] },
            },
        };
        options.HashKeys();
        Assert.All(options.Clients.Values, client => Assert.Null(client.Key));
        Assert.Empty(Errors(options));
        Assert.NotNull(new ApiClientRegistry(Options.Create(options)).Authenticate("admin", AdminKey));

        var shared = new ApiClientsOptions
        {
            Clients = { ["partner"] = new ApiClient { Key = PartnerKey }, ["other"] = new ApiClient { Key = PartnerKey } },
        };
        shared.HashKeys();
        Assert.Contains(Errors(shared), error => error.Contains("share one key", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("")] // a configuration with the unsalted KeySha256 of old binds no KeyHash
    [InlineData("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")]
    [InlineData("sha256:00112233445566778899aabbccddeeff:0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0")]
    [InlineData("sha256:0011:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")]
    public void A_client_without_a_well_formed_salted_digest_stops_the_start_with_its_name(string keyHash)
    {
        var options = new ApiClientsOptions { Clients = { ["partner"] = new ApiClient { KeyHash = keyHash } } };
        options.HashKeys();

        var error = Assert.Single(Errors(options));
        Assert.Contains("'partner'", error);
        Assert.Contains("KeyHash", error);
    }

    private static ApiClientRegistry Registry(params (string Name, string KeyHash)[] clients)
    {
        var options = new ApiClientsOptions();
        foreach (var (name, keyHash) in clients) options.Clients[name] = new ApiClient { KeyHash = keyHash };
        return new ApiClientRegistry(Options.Create(options));
    }

    private static List<string> Errors(ApiClientsOptions options) =>
        [.. options.Validate(new ValidationContext(options)).Select(result => result.ErrorMessage ?? "")];
}
