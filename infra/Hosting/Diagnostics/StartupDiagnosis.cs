using System.Collections.Immutable;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ShopReference.Hosting;

/// <summary>
/// Says why a server did not start, where a user looks. When Valkey or PostgreSQL exits with an error before it was
/// ever healthy (a port in use, a data folder written by a newer server, a stale lock file), the orchestrator alone shows
/// it "Exited" and every service "Waiting" with no reason. This reads the server's last log lines, recognises the usual
/// causes, and then: marks the resource "Failed to start" with the cause and the fix as a property, writes both to its
/// console log and the AppHost's console, and tells each resource waiting on it what it waits for
/// (docs/troubleshooting.md lists the causes).
/// </summary>
public static class StartupDiagnosis
{
    /// <summary>The dashboard property naming why the resource did not start.</summary>
    public const string FailureProperty = "Start-up failure";
    /// <summary>The dashboard property naming what the resource still waits for.</summary>
    public const string WaitingProperty = "Waiting for";

    /// <summary>Watch this server's starts. <paramref name="dataDirectory"/>: its data folder, named in the advice (null in Containers mode).</summary>
    public static IResourceBuilder<T> WithStartupDiagnosis<T>(this IResourceBuilder<T> server, string? dataDirectory) where T : IResource
    {
        if (!server.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return server;
        }
        if (!server.ApplicationBuilder.Services.Any(d => d.ServiceType == typeof(Watcher)))
        {
            server.ApplicationBuilder.Services.AddSingleton<Watcher>();
            server.ApplicationBuilder.Services.AddSingleton<Reporter>();
            // Not a hosted service: the host starts those one after another, and the orchestrator's start does not end
            // while a resource waits on a server that never became healthy, so a watcher after it would never run.
            server.ApplicationBuilder.Eventing.Subscribe<BeforeStartEvent>((started, cancellationToken) =>
            {
                var stopping = started.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
                _ = started.Services.GetRequiredService<Watcher>().WatchAsync(stopping);
                return Task.CompletedTask;
            });
        }
        return server.WithAnnotation(new DiagnosedAnnotation(dataDirectory ?? "the server's data volume"));
    }

    /// <summary>A known cause found in a server's last lines, or null.</summary>
    public static string? Explain(IEnumerable<string> lines, string dataDirectory)
    {
        foreach (var line in lines.Reverse())
        {
            foreach (var (pattern, advice) in Causes)
            {
                if (pattern.IsMatch(line))
                {
                    return advice.Replace("{data}", dataDirectory, StringComparison.Ordinal);
                }
            }
        }
        return null;
    }

    private static readonly (Regex Pattern, string Advice)[] Causes =
    [
        (new("Can't handle RDB format version|Bad file format reading the append only file|Unrecognized RDB|Unknown RDB", RegexOptions.IgnoreCase),
            "Its data folder was written by a newer Valkey than this binary (a container's, read by redis-server 7.0?). Delete {data} (cached and rebuildable data) and start it again."),
        (new("Address already in use|could not bind|Could not create server TCP listening socket", RegexOptions.IgnoreCase),
            "Its port is in use by another process. Stop that process (ss -ltnp shows it), or choose another port (--Ports:Valkey=0, --Ports:Postgres=0)."),
        (new("lock file \"postmaster.pid\" already exists", RegexOptions.IgnoreCase),
            "Another PostgreSQL holds its data folder, or a crashed one left postmaster.pid behind. Stop that server; if none runs, delete {data}/postmaster.pid."),
        (new("database files are incompatible with server|is not a valid data directory", RegexOptions.IgnoreCase),
            "Its data folder belongs to another PostgreSQL version. Delete {data} to start afresh, or run that version."),
        (new("Permission denied", RegexOptions.IgnoreCase),
            "It may not read or write {data}. Give the server's user (postgres when the AppHost runs as root) access, or choose --Infrastructure:DataDirectory."),
        (new("No such file or directory|not found on PATH|needs the PostgreSQL server binaries|needs valkey-server", RegexOptions.IgnoreCase),
            "A binary or file it needs is missing: install valkey-server (or redis-server) and PostgreSQL 15+."),
    ];

    private sealed class DiagnosedAnnotation(string dataDirectory) : IResourceAnnotation
    {
        public string DataDirectory { get; } = dataDirectory;
        public bool HealthySinceStart { get; set; }
        public bool Reported { get; set; }
    }

    /// <summary>
    /// Shows a server's start-up failure where a user looks: the cause and the fix as a property of the server, and on
    /// every resource that waits for it what it waits for. A server that is up but cannot serve (a cluster that cannot
    /// form) is reported here by its health check; one that exits, by the watcher below.
    /// </summary>
    public sealed class Reporter(ResourceNotificationService notifications, ResourceLoggerService logs, DistributedApplicationModel model, ILogger<Reporter> logger)
    {
        // Each instance's id as the orchestrator reports it (a project with replicas has one per replica).
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, IResource> _instances = new(StringComparer.Ordinal);
        private readonly System.Collections.Concurrent.ConcurrentDictionary<IResource, string> _reported = new();

        internal void Track(ResourceEvent update) => _instances.TryAdd(update.ResourceId, update.Resource);

        /// <summary>A new start: the next failure is reported even when its advice is the last one's.</summary>
        internal void Restarting(IResource server) => _reported.TryRemove(server, out _);

        private IEnumerable<string> InstancesOf(IResource resource) =>
            _instances.Where(i => i.Value == resource).Select(i => i.Key).ToList();

        /// <summary>Marks <paramref name="server"/> failed with <paramref name="advice"/> (once per distinct advice), and its dependants waiting.</summary>
        public async Task ReportAsync(IResource server, string advice, CancellationToken cancellationToken, string? instance = null, ResourceStateSnapshot? state = null)
        {
            if (_reported.TryGetValue(server, out var shown) && shown == advice)
            {
                return;
            }
            _reported[server] = advice;
            var name = server.Name;
            logger.LogError("{Resource} failed to start. {Advice}", name, advice);
            logs.GetLogger(server).LogError("Failed to start. {Advice}", advice);
            foreach (var id in instance is null ? InstancesOf(server) : [instance])
            {
                await notifications.PublishUpdateAsync(server, id, snapshot => snapshot with
                {
                    State = state ?? snapshot.State,
                    Properties = With(snapshot.Properties, FailureProperty, advice),
                });
            }
            foreach (var dependant in WaitingOn(server))
            {
                foreach (var id in InstancesOf(dependant)) // each replica of a project is a resource of its own
                {
                    await notifications.PublishUpdateAsync(dependant, id, snapshot => snapshot with
                    {
                        Properties = With(snapshot.Properties, WaitingProperty, $"{name}, which failed to start: {advice}"),
                    });
                }
            }
        }

        internal async Task ClearAsync(IResource server)
        {
            _reported.TryRemove(server, out _);
            foreach (var resource in WaitingOn(server).Prepend(server))
            {
                foreach (var instance in InstancesOf(resource))
                {
                    await notifications.PublishUpdateAsync(resource, instance, snapshot => snapshot with
                    {
                        Properties = [.. snapshot.Properties.Where(p => p.Name is not (FailureProperty or WaitingProperty))],
                    });
                }
            }
        }

        // What waits on the server, directly or through one of its children (a service waits on its database, whose parent is PostgreSQL).
        private IEnumerable<IResource> WaitingOn(IResource server) => model.Resources.Where(resource =>
            resource != server && (resource is IResourceWithParent { Parent: var parent } && parent == server
                || resource.Annotations.OfType<WaitAnnotation>().Any(wait => wait.Resource == server
                    || wait.Resource is IResourceWithParent { Parent: var waitedParent } && waitedParent == server)));

        private static ImmutableArray<ResourcePropertySnapshot> With(ImmutableArray<ResourcePropertySnapshot> properties, string name, string value) =>
            [.. properties.Where(p => p.Name != name), new ResourcePropertySnapshot(name, value) { IsHighlighted = true }];
    }

    private sealed class Watcher(Reporter reporter, ResourceLoggerService logs, ILogger<Watcher> logger, ResourceNotificationService notifications)
    {
        public async Task WatchAsync(CancellationToken stoppingToken)
        {
            await Task.Yield(); // off the start-up path
            try
            {
                await foreach (var update in notifications.WatchAsync(stoppingToken))
                {
                    reporter.Track(update);
                    if (!update.Resource.TryGetLastAnnotation<DiagnosedAnnotation>(out var diagnosed))
                    {
                        continue;
                    }
                    var state = update.Snapshot.State?.Text;
                    if (state == KnownResourceStates.Starting)
                    {
                        (diagnosed.HealthySinceStart, diagnosed.Reported) = (false, false);
                        reporter.Restarting(update.Resource);
                    }
                    else if (state == KnownResourceStates.Running && update.Snapshot.HealthStatus == HealthStatus.Healthy && !diagnosed.HealthySinceStart)
                    {
                        diagnosed.HealthySinceStart = true;
                        if (diagnosed.Reported || update.Snapshot.Properties.Any(p => p.Name == FailureProperty))
                        {
                            diagnosed.Reported = false;
                            await reporter.ClearAsync(update.Resource);
                        }
                    }
                    else if (FailedBeforeHealthy(update.Snapshot, diagnosed))
                    {
                        diagnosed.Reported = true;
                        var lines = await ResourceLogs.LastLinesAsync(logs, update.ResourceId, 40, stoppingToken);
                        var advice = Explain(lines, diagnosed.DataDirectory)
                            ?? $"It exited with code {update.Snapshot.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}; its console log says why. See docs/troubleshooting.md.";
                        logger.LogError("{Resource}'s last lines:\n{Lines}", update.Resource.Name, string.Join("\n", lines.TakeLast(10)));
                        await reporter.ReportAsync(update.Resource, advice, stoppingToken, update.ResourceId,
                            new ResourceStateSnapshot(KnownResourceStates.FailedToStart, KnownResourceStateStyles.Error));
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Start-up failures are no longer explained: the watcher stopped.");
            }
        }

        // Exited with an error (a stop asked for by the user or the AppHost exits 0), or never launched at all.
        private static bool FailedBeforeHealthy(CustomResourceSnapshot snapshot, DiagnosedAnnotation diagnosed) =>
            !diagnosed.HealthySinceStart && !diagnosed.Reported
            && (snapshot.State?.Text == KnownResourceStates.FailedToStart
                || (KnownResourceStates.TerminalStates.Contains(snapshot.State?.Text) && snapshot.ExitCode is not null and not 0));
    }
}
