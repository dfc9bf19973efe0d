using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.OutputCaching.StackExchangeRedis;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// One Valkey connection per process. Aspire.StackExchange.Redis registers the <see cref="IConnectionMultiplexer"/>
/// (with health check and tracing); <see cref="Caching.Distributed.IDistributedCache"/>, HybridCache's L2 and the
/// output-cache store are pointed at that same multiplexer instead of opening their own, so a process holds one
/// socket pair to Valkey and every command shows up in one place in the traces.
/// </summary>
public static class ValkeyClientExtensions
{
    public const string ConnectionName = "valkey";

    /// <param name="service">The service's key prefix (<c>catalog</c>, <c>cart</c>, …): every key starts with it.</param>
    public static TBuilder AddValkey<TBuilder>(this TBuilder builder, string service) where TBuilder : IHostApplicationBuilder
    {
        builder.AddRedisClient(ConnectionName, configureOptions: options =>
        {
            // Fail fast rather than queue commands while Valkey is down: callers have a defined degrade path.
            options.AbortOnConnectFail = false;
            options.ConnectTimeout = 5_000;
            options.SyncTimeout = 2_000;
            options.AsyncTimeout = 2_000;
            options.BacklogPolicy = BacklogPolicy.FailFast;
            // A service's ACL user reaches only its own keys and channels and no administrative command
            // (docs/security.md): no tie-breaker key, no configuration channel, and no INFO or CONFIG at connect, which
            // would only fill the server's ACL LOG with refusals. The server is taken to be the version the app needs.
            options.TieBreaker = "";
            options.ConfigurationChannel = "";
            options.CommandMap = CommandMap.Create(new HashSet<string> { "INFO", "CONFIG" }, available: false);
            options.DefaultVersion = new Version(7, 0);
            // Replies are read on the .NET thread pool, where the awaiting request continues, instead of on the client's
            // own dedicated threads, which cost every reply a second thread's wake-up. No code here blocks a thread on
            // Valkey, which is what the dedicated threads protect against. Measured in docs/benchmarks.md (http).
            options.SocketManager = SocketManager.ThreadPool;
        });

        builder.Services.AddStackExchangeRedisCache(_ => { });
        builder.Services.AddOptions<RedisCacheOptions>().Configure<IConnectionMultiplexer>((options, multiplexer) =>
        {
            options.InstanceName = $"{service}:dcache:";
            options.ConnectionMultiplexerFactory = () => Task.FromResult(multiplexer);
        });

        builder.Services.AddStackExchangeRedisOutputCache(_ => { });
        builder.Services.AddOptions<RedisOutputCacheOptions>().Configure<IConnectionMultiplexer>((options, multiplexer) =>
        {
            options.InstanceName = $"{service}:ocache:";
            options.ConnectionMultiplexerFactory = () => Task.FromResult(multiplexer);
        });
        DegradeOutputCacheOnOutage(builder.Services);

        // HybridCache finds the IDistributedCache above and uses it as its L2.
        builder.Services.AddHybridCache();
        return builder;
    }

    // Decorates the registered Valkey store, so output-cached routes keep answering while Valkey is down.
    private static void DegradeOutputCacheOnOutage(IServiceCollection services)
    {
        var registered = services.Last(d => d.ServiceType == typeof(IOutputCacheStore));
        services.Remove(registered);
        services.AddSingleton<IOutputCacheStore>(sp => new DegradingOutputCacheStore(
            registered.ImplementationInstance as IOutputCacheStore
                ?? registered.ImplementationFactory?.Invoke(sp) as IOutputCacheStore
                ?? (IOutputCacheStore)ActivatorUtilities.CreateInstance(sp, registered.ImplementationType!),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<DegradingOutputCacheStore>>()));
    }
}
