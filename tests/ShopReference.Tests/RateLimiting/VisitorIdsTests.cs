using Microsoft.Extensions.Options;
using ShopReference.RateLimit.Auth;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey;

namespace ShopReference.Tests.RateLimiting;

/// <summary>The gateway's visitor ids are keyed: only a holder of its key can tell which id an address has.</summary>
[Collection(ServersCollection.Name)]
public sealed class VisitorIdsTests(ServersFixture fixture)
{
    [Fact]
    public void A_visitor_id_is_stable_under_one_key_and_not_computable_from_the_address_without_it()
    {
        const string address = "ip-198.51.100.7";
        var key = Secrets.NewPassword(VisitorIdOptions.MinimumKeyLength);
        var id = Ids(key).For(address);

        Assert.Matches("^[0-9a-f]{24}$", id);
        Assert.Equal(id, Ids(key).For(address)); // the same visitor for as long as the key is the same
        Assert.NotEqual(id, Ids(Secrets.NewPassword(VisitorIdOptions.MinimumKeyLength)).For(address));
        Assert.NotEqual(KeySchema.Sha256Hex(address)[..24], id); // not the unkeyed hash anyone could recompute
        Assert.NotEqual(id, Ids(key).For("ip-198.51.100.8"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("too-short-for-a-key")]
    public async Task The_gateway_does_not_start_without_a_visitor_key_of_its_own(string key)
    {
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => InProcessService.GatewayAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            [VisitorIdOptions.Setting] = key,
        }));
        Assert.Contains(VisitorIdOptions.Setting, refused.Message);
    }

    private static VisitorIds Ids(string key) => new(Options.Create(new VisitorIdOptions { Key = key }));
}
