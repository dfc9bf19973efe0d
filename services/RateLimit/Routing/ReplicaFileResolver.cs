using System.Text.Json;
using ShopReference.Contracts.Routing;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace ShopReference.RateLimit.Routing;

/// <summary>
/// Run mode: resolves a destination (<c>http://catalog</c>) to every healthy replica of that service, as the AppHost
/// lists them in <c>Gateway:Replicas:File</c>, so YARP balances request by request (power of two choices) instead of
/// leaving a service's traffic on whichever replica the orchestrator's proxy gave each pooled connection. A service the
/// file does not list (none healthy yet, or a file that cannot be read) is resolved by service discovery as before.
/// The file changes when a replica becomes healthy, stops or restarts on a new port; YARP resolves again then.
/// </summary>
public sealed class ReplicaFileResolver(IDestinationResolver serviceDiscovery, string file, ILogger<ReplicaFileResolver> logger)
    : IDestinationResolver, IDisposable
{
    public const string FileSetting = ReplicaDirectoryFile.Setting;

    private readonly PhysicalFileProvider _folder = new(Path.GetDirectoryName(file)!);

    public async ValueTask<ResolvedDestinationCollection> ResolveDestinationsAsync(
        IReadOnlyDictionary<string, DestinationConfig> destinations, CancellationToken cancellationToken)
    {
        var changed = _folder.Watch(Path.GetFileName(file)); // before reading: a change in between fires it
        var replicas = Read();
        var resolved = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        var rest = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, destination) in destinations)
        {
            if (Uri.TryCreate(destination.Address, UriKind.Absolute, out var address)
                && replicas.TryGetValue(address.Host, out var addresses) && addresses.Length > 0)
            {
                foreach (var replica in addresses)
                {
                    resolved[$"{name}@{replica}"] = destination with { Address = replica };
                }
            }
            else
            {
                rest[name] = destination;
            }
        }
        IChangeToken token = changed;
        if (rest.Count > 0)
        {
            var discovered = await serviceDiscovery.ResolveDestinationsAsync(rest, cancellationToken);
            foreach (var (name, destination) in discovered.Destinations)
            {
                resolved[name] = destination;
            }
            if (discovered.ChangeToken is { } inner)
            {
                token = new CompositeChangeToken([changed, inner]);
            }
        }
        return new ResolvedDestinationCollection(resolved, token);
    }

    public void Dispose() => _folder.Dispose();

    private Dictionary<string, string[]> Read()
    {
        try
        {
            return ReplicaDirectoryFile.Read(file);
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            logger.LogDebug("No replica directory in {File} ({Message}); service discovery resolves every destination.", file, ex.Message);
            return [];
        }
    }

    /// <summary>Puts this resolver in front of service discovery's when the AppHost gives the gateway a replica file.</summary>
    public static void AddTo(IServiceCollection services, IConfiguration configuration)
    {
        if (configuration[FileSetting] is not { Length: > 0 } file)
        {
            return;
        }
        var registered = services.Last(d => d.ServiceType == typeof(IDestinationResolver));
        services.Remove(registered);
        services.AddSingleton<IDestinationResolver>(sp => new ReplicaFileResolver(Create(sp, registered), file, sp.GetRequiredService<ILogger<ReplicaFileResolver>>()));
    }

    private static IDestinationResolver Create(IServiceProvider services, ServiceDescriptor registered) =>
        (IDestinationResolver)(registered.ImplementationInstance
            ?? registered.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, registered.ImplementationType!));
}
