using Microsoft.Extensions.Options;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;

namespace ShopReference.Tests.Platform;

/// <summary>
/// A service's settings are checked when it starts, the one way every service binds them: a bad value stops the
/// service at once with the setting's name, instead of surfacing at the first request that needs it (or never).
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class SettingsValidationTests(ServersFixture fixture)
{
    [Theory]
    [InlineData("cart-session", "Cart:MaxLines", "0", "MaxLines")]
    [InlineData("cart-session", "Cart:IdleTimeout", "00:00:00", "IdleTimeout")]
    [InlineData("catalog", "Catalog:NearCache:MaxEntries", "0", "MaxEntries")]
    [InlineData("catalog", "Catalog:NearCache:ProbeTimeout", "00:00:00.5", "ProbeTimeout")] // not longer than the 1 s probe interval
    [InlineData("analytics", "Analytics:Consumer:BatchSize", "0", "BatchSize")]
    [InlineData("analytics", "Analytics:Consumer:FillWait", "-00:00:01", "FillWait")]
    public async Task A_service_with_a_bad_setting_does_not_start_and_names_it(string service, string setting, string value, string named)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            // Never reached: the settings are checked before anything connects.
            ["ConnectionStrings:catalogdb"] = Unreachable, ["ConnectionStrings:cartdb"] = Unreachable, ["ConnectionStrings:analyticsdb"] = Unreachable,
            [setting] = value,
        };
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => service switch
        {
            "cart-session" => InProcessService.CartAsync(settings),
            "catalog" => InProcessService.CatalogAsync(settings),
            _ => InProcessService.AnalyticsAsync(settings),
        });
        Assert.Contains(named, refused.Message, StringComparison.Ordinal);
    }

    private const string Unreachable = "Host=127.0.0.1;Port=1;Database=none;Username=none;Password=none;Timeout=1";
}
