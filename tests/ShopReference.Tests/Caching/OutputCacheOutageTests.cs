using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ShopReference.Testing;

namespace ShopReference.Tests.Caching;

/// <summary>The output-cache store as ServiceDefaults wires it: Valkey-backed, and a miss rather than an error when Valkey is down.</summary>
public sealed class OutputCacheOutageTests
{
    [Fact]
    public async Task With_valkey_down_the_output_cache_reads_as_a_miss_and_writes_are_skipped()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var valkey = await TestValkeyServer.StartAsync(); // its own server: this test stops it
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration["ConnectionStrings:valkey"] = valkey.ConnectionString;
        builder.AddValkey(service: "test");
        using var host = builder.Build();
        var store = host.Services.GetRequiredService<IOutputCacheStore>();
        var key = "page-" + Guid.NewGuid().ToString("N");

        await store.SetAsync(key, [1, 2, 3], ["products"], TimeSpan.FromMinutes(1), ct);
        Assert.Equal([1, 2, 3], await store.GetAsync(key, ct));

        await valkey.StopAsync();
        Assert.Null(await store.GetAsync(key, ct));
        await store.SetAsync(key, [4, 5, 6], ["products"], TimeSpan.FromMinutes(1), ct);
        await store.EvictByTagAsync("products", ct);

        Assert.IsType<DegradingOutputCacheStore>(store);
    }
}
