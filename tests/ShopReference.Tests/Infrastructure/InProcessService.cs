using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ShopReference.Testing;

namespace ShopReference.Tests.Infrastructure;

/// <summary>
/// One service hosted in the test process exactly as its Program.cs wires it (service defaults, its own services, its
/// routes), on a real Kestrel port and against servers the test owns, so a test can stop Valkey under a live service
/// without disturbing the shared end-to-end app.
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

    /// <param name="settings">Connection strings and options, as the AppHost would pass them.</param>
    /// <param name="addServices">The service's own <c>AddApplicationServices</c>.</param>
    /// <param name="map">The service's routes.</param>
    public static async Task<InProcessService> StartAsync(IReadOnlyDictionary<string, string?> settings,
        Action<WebApplicationBuilder> addServices, Action<WebApplication> map)
    {
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production });
        builder.Configuration.AddInMemoryCollection(settings);
        if (string.IsNullOrEmpty(builder.Configuration["Auth:SigningKey"]))
        {
            builder.Configuration["Auth:SigningKey"] = Secrets.NewPassword(64);
        }
        builder.WebHost.UseUrls(address.ToString());
        builder.AddServiceDefaults();
        addServices(builder);
        var app = builder.Build();
        app.MapDefaultEndpoints();
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
