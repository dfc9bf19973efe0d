using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ShopReference.Hosting;
using ShopReference.Testing;

namespace ShopReference.Tests.Infrastructure;

/// <summary>
/// One service hosted in the test process exactly as its Program.cs runs it (service defaults, its
/// <c>AddApplicationServices</c> and its whole pipeline, <c>MapApplication</c>), on a real Kestrel port and against
/// servers the test owns, so a test can stop Valkey under a live service without disturbing the shared end-to-end app.
/// </summary>
public sealed class InProcessService : IAsyncDisposable
{
    private readonly WebApplication _app;

    private InProcessService(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>The service's own container, to look at its meters and counters.</summary>
    public IServiceProvider Services => _app.Services;

    public HttpClient Client() => new(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = Address };

    public static Task<InProcessService> CatalogAsync(IReadOnlyDictionary<string, string?> settings) => StartAsync("catalog", settings,
        b => ShopReference.Catalog.Extensions.Extensions.AddApplicationServices(b), a => ShopReference.Catalog.Extensions.Extensions.MapApplication(a));

    public static Task<InProcessService> CartAsync(IReadOnlyDictionary<string, string?> settings) => StartAsync("cart-session", settings,
        b => ShopReference.CartSession.Extensions.Extensions.AddApplicationServices(b), a => ShopReference.CartSession.Extensions.Extensions.MapApplication(a));

    public static Task<InProcessService> AnalyticsAsync(IReadOnlyDictionary<string, string?> settings) => StartAsync("analytics", settings,
        b => ShopReference.Analytics.Extensions.Extensions.AddApplicationServices(b), a => ShopReference.Analytics.Extensions.Extensions.MapApplication(a));

    /// <param name="address">Where to listen; a gateway started again on the same address is the same issuer to the services.</param>
    public static Task<InProcessService> GatewayAsync(IReadOnlyDictionary<string, string?> settings, Uri? address = null) => StartAsync("rate-limit", settings,
        b => ShopReference.RateLimit.Extensions.Extensions.AddApplicationServices(b), a => ShopReference.RateLimit.Extensions.Extensions.MapApplication(a), address);

    /// <param name="settings">Connection strings and options, as the AppHost would pass them.</param>
    /// <param name="addServices">The service's own <c>AddApplicationServices</c>.</param>
    /// <param name="map">The service's pipeline, <c>MapApplication</c>.</param>
    /// <param name="service">The service's folder in the test output, holding its own appsettings.json.</param>
    private static async Task<InProcessService> StartAsync(string service, IReadOnlyDictionary<string, string?> settings,
        Action<WebApplicationBuilder> addServices, Action<WebApplication> map, Uri? address = null)
    {
        address ??= new Uri($"http://127.0.0.1:{LocalPorts.NextFree()}");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = Environments.Production,
            ContentRootPath = Path.Combine(AppContext.BaseDirectory, "services", service),
        });
        builder.Configuration.AddInMemoryCollection(settings);
        // As the AppHost does: the signing secret to the gateway alone; a service is told the public keys (pinned here,
        // unless the test points it at an issuer).
        var signingSecret = builder.Configuration["Auth:SigningKey"] is { Length: > 0 } given ? given : Secrets.NewPassword(64);
        if (service == "rate-limit")
        {
            builder.Configuration["Auth:SigningKey"] = signingSecret;
            builder.Configuration["Auth:VisitorKey"] ??= Secrets.NewPassword(32);
        }
        else
        {
            builder.Configuration["Auth:SigningKey"] = null;
            if (string.IsNullOrEmpty(builder.Configuration[ShopAuthentication.IssuerAddressKey]))
            {
                builder.Configuration[ShopAuthentication.PinnedKeysKey] = IssuerSigningKey.Jwks([IssuerSigningKey.FromSecret(signingSecret)]);
            }
        }
        builder.WebHost.UseUrls(address.ToString());
        builder.AddServiceDefaults();
        addServices(builder);
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        return new InProcessService(app, address);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
