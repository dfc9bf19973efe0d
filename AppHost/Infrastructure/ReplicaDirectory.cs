using ShopReference.Contracts.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Run mode: the gateway reaches every replica of a service, request by request. The orchestrator's proxy in front of
/// a replicated project picks a replica per TCP connection, and the gateway keeps its connections, so without this one
/// replica could take all of a service's traffic (microsoft/aspire#6640, #9486). The AppHost knows each replica's own
/// address (its <c>ASPNETCORE_URLS</c>) and health, so it writes the healthy ones to a file that only the gateway
/// reads (<c>Gateway:Replicas:File</c>); the gateway's YARP balances over them and falls back to service discovery
/// when the file names none. Deployed, the platform's ingress balances per request and there is no file.
/// </summary>
public static class ReplicaDirectory
{
    public static IResourceBuilder<ProjectResource> WithReplicaDirectory(this IResourceBuilder<ProjectResource> gateway,
        params IResourceBuilder<ProjectResource>[] services)
    {
        var builder = gateway.ApplicationBuilder;
        if (!builder.ExecutionContext.IsRunMode)
        {
            return gateway;
        }
        // A folder of this run's own (mode 700): nothing else on the machine may point the gateway elsewhere.
        var file = Path.Combine(Directory.CreateTempSubdirectory("shopref-replicas-").FullName, ReplicaDirectoryFile.FileName);
        var writer = new Writer(file, [.. services.Select(s => s.Resource.Name)]);
        // Not a hosted service, for the reason StartupDiagnosis gives: the orchestrator's start may not end.
        builder.Eventing.Subscribe<BeforeStartEvent>((started, cancellationToken) =>
        {
            var lifetime = started.Services.GetRequiredService<IHostApplicationLifetime>();
            _ = writer.WatchAsync(started.Services.GetRequiredService<ResourceNotificationService>(),
                started.Services.GetRequiredService<ILogger<Writer>>(), lifetime.ApplicationStopping);
            lifetime.ApplicationStopped.Register(writer.Delete);
            return Task.CompletedTask;
        });
        return gateway.WithEnvironment(ReplicaDirectoryFile.EnvironmentVariable, file);
    }

    /// <summary>Keeps the file (<see cref="ReplicaDirectoryFile"/>) equal to the healthy replicas' addresses, by service.</summary>
    public sealed class Writer(string file, IReadOnlyList<string> services)
    {
        // Touched only by the one watch loop below.
        private readonly Dictionary<string, (string Service, string? Address)> _replicas = new(StringComparer.Ordinal);
        private string _written = "";

        public async Task WatchAsync(ResourceNotificationService notifications, ILogger logger, CancellationToken stoppingToken)
        {
            await Task.Yield(); // off the start-up path
            try
            {
                Write(); // an empty directory first: the gateway uses service discovery until replicas are healthy
                await foreach (var update in notifications.WatchAsync(stoppingToken))
                {
                    if (!services.Contains(update.Resource.Name))
                    {
                        continue;
                    }
                    var healthy = update.Snapshot.State?.Text == KnownResourceStates.Running && update.Snapshot.HealthStatus == HealthStatus.Healthy;
                    _replicas[update.ResourceId] = (update.Resource.Name, healthy ? AddressOf(update.Snapshot) : null);
                    Write();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                // The gateway keeps the replicas last written; a request to one that has since gone fails until a restart.
                logger.LogError(ex, "The gateway's replica directory is no longer kept up to date.");
            }
        }

        public void Delete()
        {
            try
            {
                Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A temporary folder: the system's cleanup takes it.
            }
        }

        private static string? AddressOf(CustomResourceSnapshot snapshot) =>
            snapshot.EnvironmentVariables.FirstOrDefault(e => e.Name == "ASPNETCORE_URLS")?.Value?
                .Split(';').FirstOrDefault(u => u.StartsWith("http://", StringComparison.Ordinal));

        private void Write()
        {
            var directory = services.ToDictionary(s => s, s => _replicas.Values.Where(r => r.Service == s && r.Address is not null)
                .Select(r => r.Address!).Order(StringComparer.Ordinal).ToArray());
            var json = ReplicaDirectoryFile.Serialize(directory);
            if (json == _written)
            {
                return;
            }
            ReplicaDirectoryFile.Write(file, json);
            _written = json;
        }
    }
}
