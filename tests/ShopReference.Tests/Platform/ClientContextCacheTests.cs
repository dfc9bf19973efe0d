using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ShopReference.RateLimit.Auth;
using ShopReference.Testing;

namespace ShopReference.Tests.Platform;

/// <summary>
/// A service checks a client context's signature once per token, not once per request: counted by the validator's own
/// events, with the tokens the gateway issues, a token signed with another key, and one about to expire.
/// </summary>
public sealed class ClientContextCacheTests : IAsyncDisposable
{
    private readonly string _key = Secrets.NewPassword(64);
    private readonly ServiceProvider _services;
    private int _validated;
    private int _refused;

    public ClientContextCacheTests()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration[ShopAuthentication.PinnedKeysKey] = IssuerSigningKey.Jwks([IssuerSigningKey.FromSecret(_key)]); // the public key only
        builder.Services.AddLogging();
        builder.AddShopAuthentication();
        builder.Services.PostConfigure<JwtBearerOptions>(ShopAuthentication.ClientContextScheme, options =>
        {
            options.Events.OnTokenValidated = _ => { Interlocked.Increment(ref _validated); return Task.CompletedTask; };
            options.Events.OnAuthenticationFailed = _ => { Interlocked.Increment(ref _refused); return Task.CompletedTask; };
        });
        _services = builder.Services.BuildServiceProvider();
    }

    [Fact]
    public async Task A_valid_context_is_checked_once_and_then_served_by_its_token_text_alone()
    {
        var token = Issuer(_key).ClientContext("visitor-1", isHttps: true);

        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(new ClientContext("visitor-1", IsHttps: true), await ReadAsync(token));
        }
        Assert.Equal(1, _validated);

        Assert.Equal(new ClientContext("visitor-2", IsHttps: false), await ReadAsync(Issuer(_key).ClientContext("visitor-2", isHttps: false)));
        Assert.Equal(2, _validated); // another token is another check, whatever the first one was
    }

    [Fact]
    public async Task A_context_signed_with_another_key_is_refused_every_time_and_never_kept()
    {
        var forged = Issuer(Secrets.NewPassword(64)).ClientContext("visitor-1", isHttps: true);

        for (var i = 0; i < 3; i++)
        {
            Assert.Null(await ReadAsync(forged));
        }
        Assert.Equal(3, _refused);
        Assert.Equal(0, _validated);
    }

    [Fact]
    public async Task A_kept_context_is_checked_again_once_its_token_has_expired()
    {
        // Issued as if 1 s before the end of its lifetime: it expires a second from now.
        var issued = DateTimeOffset.UtcNow - TokenIssuer.ClientContextLifetime + TimeSpan.FromSeconds(1);
        var token = Issuer(_key, new FixedTime(issued)).ClientContext("visitor-1", isHttps: false);
        Assert.NotNull(await ReadAsync(token));
        Assert.Equal(1, _validated);

        var expires = issued + TokenIssuer.ClientContextLifetime;
        await Eventually.UntilAsync(() => DateTimeOffset.UtcNow > expires.AddMilliseconds(100), TimeSpan.FromSeconds(10),
            "the token's expiry passed", cancellationToken: TestContext.Current.CancellationToken);
        await ReadAsync(token); // still within the validator's clock skew, so accepted, but only after a check
        Assert.Equal(2, _validated);
    }

    private async Task<ClientContext?> ReadAsync(string token)
    {
        await using var scope = _services.CreateAsyncScope();
        var http = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
        http.Request.Headers[ShopAuthentication.ClientContextHeader] = token;
        return await ClientContext.FromAsync(http);
    }

    private static TokenIssuer Issuer(string key, TimeProvider? time = null) =>
        new(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [TokenIssuer.SigningKeySetting] = key }).Build(), time);

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    public ValueTask DisposeAsync() => _services.DisposeAsync();
}
