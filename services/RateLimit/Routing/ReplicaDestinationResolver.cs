using System.Collections.Concurrent;
using Microsoft.Extensions.Primitives;
using ShopReference.Valkey.Discovery;
using StackExchange.Redis;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace ShopReference.RateLimit.Routing;

/// <summary>
/// Resolves a route's destination to every live replica of its service, so YARP balances request by request. A
/// destination whose metadata names a registry (<c>ReplicaRegistry: catalog:replicas</c>) becomes one destination per
/// address in the <see cref="ReplicaDirectory"/>; any other destination, or one whose registry has not been read yet,
/// is resolved by service discovery as before. Without this, in run mode, every request would go to the orchestrator's
/// proxy, which picks a replica per connection, and the gateway's pooled connections would keep each service's
/// traffic on one replica.
/// <para>
/// It does no I/O of its own and needs nothing from Valkey: YARP resolves while the app is being built, blocking it,
/// so the registries are read by <see cref="ReplicaDirectoryRefresher"/>, a hosted service that starts with the host.
/// </para>
/// </summary>
public sealed class ReplicaDestinationResolver(IDestinationResolver serviceDiscovery, ReplicaDirectory directory) : IDestinationResolver
{
    public const string RegistryMetadata = "ReplicaRegistry";

    public async ValueTask<ResolvedDestinationCollection> ResolveDestinationsAsync(
        IReadOnlyDictionary<string, DestinationConfig> destinations, CancellationToken cancellationToken)
    {
        var changed = directory.Changed;
        var resolved = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        var rest = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, destination) in destinations)
        {
            var replicas = destination.Metadata?.TryGetValue(RegistryMetadata, out var key) == true ? directory.Watch(key) : [];
            if (replicas.Count == 0)
            {
                rest[name] = destination;
                continue;
            }
            foreach (var address in replicas)
            {
                resolved[$"{name}[{address}]"] = destination with { Address = address };
            }
        }
        IChangeToken token = changed;
        if (rest.Count > 0)
        {
            var discovered = await serviceDiscovery.ResolveDestinationsAsync(rest, cancellationToken);
            foreach (var (name, destination) in discovered.Destinations) resolved[name] = destination;
            if (discovered.ChangeToken is { } inner) token = new CompositeChangeToken([token, inner]);
        }
        return new ResolvedDestinationCollection(resolved, token);
    }

    /// <summary>Puts this resolver in front of the registered one (service discovery's), and starts the refresher.</summary>
    public static void AddTo(IServiceCollection services)
    {
        services.AddSingleton<ReplicaDirectory>();
        services.AddHostedService<ReplicaDirectoryRefresher>();
        services.Decorate<IDestinationResolver>((sp, serviceDiscovery) => new ReplicaDestinationResolver(serviceDiscovery, sp.GetRequiredService<ReplicaDirectory>()));
    }
}

/// <summary>The replicas last read from each registry the resolver asked for, and a token that fires when they change.</summary>
public sealed class ReplicaDirectory
{
    private readonly ConcurrentDictionary<string, IReadOnlyList<string>> _replicas = new(StringComparer.Ordinal);
    private CancellationTokenSource _changed = new();

    public IChangeToken Changed => new CancellationChangeToken(Volatile.Read(ref _changed).Token);

    /// <summary>The replicas known for <paramref name="key"/>; asking is what makes the refresher read that registry.</summary>
    public IReadOnlyList<string> Watch(string key) => _replicas.GetOrAdd(key, []);

    public IEnumerable<string> Registries => _replicas.Keys;

    /// <summary>Records what a registry holds now; fires <see cref="Changed"/> if that differs from before.</summary>
    public bool Update(string key, IReadOnlyList<string> replicas)
    {
        if (_replicas.TryGetValue(key, out var known) && known.SequenceEqual(replicas, StringComparer.Ordinal)) return false;
        _replicas[key] = replicas;
        Interlocked.Exchange(ref _changed, new CancellationTokenSource()).Cancel();
        return true;
    }
}

/// <summary>
/// Reads the registries the resolver asked for every heartbeat. While Valkey cannot be read the replicas last seen
/// are kept; YARP's passive health check stops sending to one whose connections fail.
/// </summary>
public sealed class ReplicaDirectoryRefresher(ReplicaDirectory directory, IConnectionMultiplexer valkey, ILogger<ReplicaDirectoryRefresher> logger)
    : BackgroundService
{
    private readonly ReplicaRegistry _registry = new(valkey);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(ReplicaRegistry.Heartbeat);
        try
        {
            do
            {
                foreach (var key in directory.Registries.ToList())
                {
                    try
                    {
                        var replicas = await _registry.ReadAsync(key);
                        if (directory.Update(key, replicas))
                        {
                            logger.LogInformation("Replicas in {Registry}: {Replicas}", key, string.Join(", ", replicas));
                        }
                    }
                    catch (Exception ex) when (ex is RedisException or TimeoutException)
                    {
                        logger.LogDebug(ex, "Replica registry {Registry} unreadable; keeping the replicas last seen", key); // Valkey is down or busy: expected, and said by its own health check
                    }
                    catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                    {
                        // Never let the loop end: an unhandled exception in a hosted service stops the gateway.
                        logger.LogWarning(ex, "Replica registry {Registry} unreadable; keeping the replicas last seen", key);
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
