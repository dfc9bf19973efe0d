using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ShopReference.RateLimit.Auth;
using ShopReference.Hosting;
using ShopReference.Shoppers;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;

namespace ShopReference.Tests.RateLimiting;

/// <summary>
/// Only the gateway signs, and it can change its key without a restart of the services: a cart service that was told
/// nothing but the gateway's address validates tokens with the keys the gateway publishes, fetches them again when a
/// token names a key it has not seen, and keeps accepting tokens signed just before the rollover.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class IssuerKeyRolloverTests(ServersFixture fixture)
{
    private const string Operator = "rollover-operator";
    private static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);
    private readonly string _operatorKey = Secrets.NewPassword(32);
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_key_rollover_at_the_gateway_keeps_every_token_working_on_a_service_that_was_not_restarted()
    {
        var issuerAddress = new Uri($"http://127.0.0.1:{LocalPorts.NextFree()}");
        string oldSecret = Secrets.NewPassword(64), newSecret = Secrets.NewPassword(64);
        var gateway = await InProcessService.GatewayAsync(GatewaySettings(oldSecret, previous: null), issuerAddress);
        await using var cart = await InProcessService.CartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("rollover"),
            ["services:catalog:http:0"] = $"http://127.0.0.1:{LocalPorts.NextFree()}",
            [ShopAuthentication.IssuerAddressKey] = issuerAddress.ToString(),
            [ShopAuthentication.KeyRefreshIntervalKey] = RefreshInterval.ToString(),
        });
        string beforeRollover;
        var fetched = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            beforeRollover = await TokenAsync(gateway);
            Assert.Equal(HttpStatusCode.OK, await AdminReadAsync(cart, beforeRollover)); // the cart fetches the keys
            fetched.Restart();
        }
        finally
        {
            await gateway.DisposeAsync();
        }

        // The rollover: the gateway alone starts again, signing with the new key and still publishing the old one.
        await using var rolled = await InProcessService.GatewayAsync(GatewaySettings(newSecret, previous: oldSecret), issuerAddress);
        var afterRollover = await TokenAsync(rolled);
        var unpublished = new TokenIssuer(new ConfigurationBuilder().AddInMemoryCollection(
            new Dictionary<string, string?> { [TokenIssuer.SigningKeySetting] = Secrets.NewPassword(64) }).Build()).AccessToken(Operator, [Permissions.Operator]);

        // A service fetches the keys again at most once per refresh interval (10 s unless set), so that tokens naming
        // made-up keys cannot make it ask the gateway on every request; a rollover comes long after the last fetch.
        await Eventually.UntilAsync(() => fetched.Elapsed > RefreshInterval, RefreshInterval * 3, "the refresh interval passed", cancellationToken: Ct);

        Assert.NotEqual(Kid(beforeRollover), Kid(afterRollover));
        Assert.Equal(HttpStatusCode.OK, await AdminReadAsync(cart, afterRollover)); // its first request with the new key
        Assert.Equal(HttpStatusCode.OK, await AdminReadAsync(cart, beforeRollover));
        Assert.Equal(HttpStatusCode.Unauthorized, await AdminReadAsync(cart, unpublished));
    }

    private Dictionary<string, string?> GatewaySettings(string secret, string? previous) => new()
    {
        ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
        ["Auth:SigningKey"] = secret,
        ["Auth:PreviousSigningKey"] = previous,
        [$"Clients:{Operator}:Key"] = _operatorKey,
        [$"Clients:{Operator}:Permissions:0"] = Permissions.Operator,
    };

    private async Task<string> TokenAsync(InProcessService gateway)
    {
        using var http = gateway.Client();
        return (await ShopClient.TokenAsync(http, Operator, _operatorKey, Ct)).Value;
    }

    private async Task<HttpStatusCode> AdminReadAsync(InProcessService service, string token)
    {
        using var http = service.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/sessions");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request, Ct);
        return response.StatusCode;
    }

    private static string Kid(string token) => new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(token).Kid;
}
