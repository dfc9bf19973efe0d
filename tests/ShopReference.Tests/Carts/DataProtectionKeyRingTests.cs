using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using ShopReference.CartSession.Extensions;
using ShopReference.CartSession.Sessions;
using ShopReference.Hosting;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using StackExchange.Redis;

namespace ShopReference.Tests.Carts;

/// <summary>
/// Two cart replicas on one Valkey agree on one Data Protection key, and each has its ring loaded before it is ready:
/// once ready, a payload one protected is read by the other with Valkey gone. A ring first read on a request's path
/// could fail there, and the session middleware would take the cookie for a new session without a word.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class DataProtectionKeyRingTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Two_replicas_agree_on_one_key_and_are_ready_with_their_ring_loaded()
    {
        await using var valkey = await TestValkeyServer.StartAsync(); // its own server: this test stops it
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = valkey.FastFailConnectionString,
            ["ConnectionStrings:cartdb"] = await fixture.Postgres.CreateDatabaseAsync("keyring"),
            ["services:catalog:http:0"] = $"http://127.0.0.1:{LocalPorts.NextFree()}",
        };
        var started = await Task.WhenAll(Task.Run(() => InProcessService.CartAsync(settings)), Task.Run(() => InProcessService.CartAsync(settings))); // two replicas starting together
        await using var first = started[0];
        await using var second = started[1];
        await Task.WhenAll(started.Select(s => s.Services.GetRequiredService<DataProtectionKeyRing>().Completion)).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        await using (var connection = await ConnectionMultiplexer.ConnectAsync(valkey.ConnectionString))
        {
            Assert.Equal(1, await connection.GetDatabase().ListLengthAsync(Extensions.DataProtectionKeys));
        }

        await valkey.StopAsync();
        var payload = first.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("test").Protect("GBP");
        var read = second.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("test").Unprotect(payload);

        Assert.Equal("GBP", read);
    }
}
