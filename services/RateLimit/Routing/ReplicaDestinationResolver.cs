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
/// address announced there; any other destination, or one whose registry is still empty, is resolved by service
/// discovery as before. Without this, in run mode, every request would go to the orchestrator's proxy, which picks a
/// replica per connection, and the gateway's pooled connections would keep each service's traffic on one replica.
/// <para>
/// The registries are read in the background, never while resolving: YARP resolves on the first request (the first
/// health check), blocking it, and a Valkey round trip there (or the connection's first connect, to every node of a
/// cluster) could hold every request thread of a starved process. When a background read finds the replicas changed,
/// the change token makes YARP resolve again. While Valkey cannot be read the last known replicas are kept; YARP's
/// passive health check stops sending to one whose connections fail.
/// </para>
/// </summary>
public sealed class ReplicaDestinationResolver : IDestinationResolver, IAsyncDisposable
{
    public const string RegistryMetadata = "ReplicaRegistry";

    private readonly IDestinationResolver _serviceDiscovery;
    private readonly IServiceProvider _services;
    private readonly ILogger<ReplicaDestinationResolver> _logger;
    private readonly ConcurrentDictionary<string, IReadOnlyList<string>> _replicas = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _refreshing;
    private CancellationTokenSource _changed = new();

    public ReplicaDestinationResolver(IDestinationResolver serviceDiscovery, IServiceProvider services, ILogger<ReplicaDestinationResolver> logger)
    {
        _serviceDiscovery = serviceDiscovery;
        _services = services;
        _logger = logger;
        _refreshing = Task.Run(RefreshAsync);
    }

    public async ValueTask<ResolvedDestinationCollection> ResolveDestinationsAsync(
        IReadOnlyDictionary<string, DestinationConfig> destinations, CancellationToken cancellationToken)
    {
        var changed = Volatile.Read(ref _changed).Token;
        var resolved = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        var rest = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, destination) in destinations)
        {
            // Asking for a registry is what makes the background loop read it.
            var replicas = destination.Metadata?.TryGetValue(RegistryMetadata, out var key) == true ? _replicas.GetOrAdd(key, []) : [];
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
        IChangeToken token = new CancellationChangeToken(changed);
        if (rest.Count > 0)
        {
            var discovered = await _serviceDiscovery.ResolveDestinationsAsync(rest, cancellationToken);
            foreach (var (name, destination) in discovered.Destinations) resolved[name] = destination;
            if (discovered.ChangeToken is { } inner) token = new CompositeChangeToken([token, inner]);
        }
        return new ResolvedDestinationCollection(resolved, token);
    }

    private async Task RefreshAsync()
    {
        using var timer = new PeriodicTimer(ReplicaRegistry.Heartbeat);
        ReplicaRegistry? registry = null;
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                var changed = false;
                foreach (var key in _replicas.Keys)
                {
                    try
                    {
                        registry ??= new ReplicaRegistry(_services.GetRequiredService<IConnectionMultiplexer>());
                        var now = await registry.ReadAsync(key);
                        if (!now.SequenceEqual(_replicas[key], StringComparer.Ordinal))
                        {
                            _replicas[key] = now;
                            changed = true;
                        }
                    }
                    catch (Exception ex) when (ex is RedisException or TimeoutException)
                    {
                        _logger.LogDebug(ex, "Replica registry {Key} unreadable; keeping the replicas last seen", key);
                    }
                }
                if (changed)
                {
                    _logger.LogInformation("Replicas now: {Replicas}", string.Join("; ", _replicas.Select(r => $"{r.Key} = {string.Join(", ", r.Value)}")));
                    Interlocked.Exchange(ref _changed, new CancellationTokenSource()).Cancel();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Puts this resolver in front of the registered one (service discovery's), which it falls back to.</summary>
    public static void Decorate(IServiceCollection services) =>
        services.Decorate<IDestinationResolver>((sp, serviceDiscovery) =>
            new ReplicaDestinationResolver(serviceDiscovery, sp, sp.GetRequiredService<ILogger<ReplicaDestinationResolver>>()));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _refreshing;
        _stop.Dispose();
    }
}
