using Microsoft.Extensions.Primitives;
using ShopReference.Valkey.Discovery;
using StackExchange.Redis;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace ShopReference.RateLimit.Routing;

/// <summary>
/// Resolves a route's destination to every live replica of its service, so YARP balances request by request. A
/// destination whose metadata names a registry (<c>ReplicaRegistry: catalog:replicas</c>) becomes one destination per
/// address announced there; any other destination, or one whose registry is empty or cannot be read (Valkey down),
/// is resolved by service discovery as before. The answer is re-read every heartbeat, so a replica that starts or
/// dies is picked up or dropped within seconds. Without this, in run mode, every request would go to the
/// orchestrator's proxy, which picks a replica per connection, and the gateway's pooled connections would keep
/// sending each service's traffic to the same replica.
/// </summary>
public sealed class ReplicaDestinationResolver(IDestinationResolver serviceDiscovery, IConnectionMultiplexer valkey,
    ILogger<ReplicaDestinationResolver> logger) : IDestinationResolver
{
    public const string RegistryMetadata = "ReplicaRegistry";
    private readonly ReplicaRegistry _registry = new(valkey);

    public async ValueTask<ResolvedDestinationCollection> ResolveDestinationsAsync(
        IReadOnlyDictionary<string, DestinationConfig> destinations, CancellationToken cancellationToken)
    {
        var resolved = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        var rest = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, destination) in destinations)
        {
            var replicas = destination.Metadata?.TryGetValue(RegistryMetadata, out var key) == true ? await ReadAsync(key) : [];
            if (replicas.Count == 0)
            {
                rest[name] = destination;
                continue;
            }
            foreach (var address in replicas)
            {
                resolved[$"{name}[{address}]"] = destination with { Address = address, Host = destination.Host };
            }
        }
        IChangeToken? inner = null;
        if (rest.Count > 0)
        {
            var discovered = await serviceDiscovery.ResolveDestinationsAsync(rest, cancellationToken);
            foreach (var (name, destination) in discovered.Destinations) resolved[name] = destination;
            inner = discovered.ChangeToken;
        }
        // Ask again after a heartbeat, whatever the answer: replicas come and go.
        var refresh = new CancellationChangeToken(new CancellationTokenSource(ReplicaRegistry.Heartbeat).Token);
        return new ResolvedDestinationCollection(resolved, inner is null ? refresh : new CompositeChangeToken([refresh, inner]));
    }

    private async Task<IReadOnlyList<string>> ReadAsync(string key)
    {
        try
        {
            return await _registry.ReadAsync(key);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogDebug(ex, "Replica registry {Key} unreadable; routing through service discovery", key);
            return [];
        }
    }

    /// <summary>Puts this resolver in front of the registered one (service discovery's), which it falls back to.</summary>
    public static void Decorate(IServiceCollection services) =>
        services.Decorate<IDestinationResolver>((sp, serviceDiscovery) => new ReplicaDestinationResolver(serviceDiscovery,
            sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<ILogger<ReplicaDestinationResolver>>()));
}
