using System.Text.RegularExpressions;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ShopReference.Testing;

/// <summary>The wait for a started app to become healthy, and the report that says why it did not.</summary>
public sealed partial class ShopApp
{
    /// <summary>
    /// Starts the app and waits until every resource is healthy. A resource instance that ends on the way (a replica
    /// whose process exited) will never be healthy, and the orchestrator's start itself waits for it (a dependant's
    /// <c>WaitFor</c>): the start fails at once with the report, instead of after the whole start timeout.
    /// </summary>
    private static async Task StartUntilHealthyAsync(DistributedApplication app, CancellationToken cancellationToken)
    {
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ended = FirstEndedInstanceAsync(app, waiting.Token);
        var healthy = StartAndWaitAsync(app, waiting.Token);
        var first = await Task.WhenAny(healthy, ended);
        await waiting.CancelAsync();
        await Task.WhenAll(healthy, ended).ContinueWith(_ => { }, TaskScheduler.Default); // both observed, whatever they threw
        if (first == ended && ended.IsCompletedSuccessfully)
        {
            var (id, snapshot) = ended.Result;
            // What the instance that ended wrote comes first: it is often not one of the resources the report below
            // names (a node of the cluster, a provisioning step), and its last words say why it ended.
            throw new InvalidOperationException(
                $"{id} ended during the start ({snapshot.State?.Text}, exit code {snapshot.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"}).\n" +
                $"--- last lines of {id}:\n{await RecentLogAsync(app, id, 20)}\n{await StartReportAsync(app)}");
        }
        await healthy; // completed, or the timeout's cancellation, which the caller reports
    }

    private static async Task StartAndWaitAsync(DistributedApplication app, CancellationToken cancellationToken)
    {
        await app.StartAsync(cancellationToken);
        foreach (var resource in Resources)
        {
            await app.ResourceNotifications.WaitForResourceHealthyAsync(resource, cancellationToken);
        }
    }

    // The first instance of the app's resources seen in a terminal state (Exited, Finished, FailedToStart). Nothing in
    // the app is meant to end while it runs, except the one-shot provisioning, when it succeeds.
    private static async Task<(string Id, CustomResourceSnapshot Snapshot)> FirstEndedInstanceAsync(DistributedApplication app, CancellationToken cancellationToken)
    {
        await foreach (var update in app.ResourceNotifications.WatchAsync(cancellationToken))
        {
            if (update.Snapshot.State?.Text is { } state && KnownResourceStates.TerminalStates.Contains(state)
                && !(update.Resource.Name == ProvisioningResource && update.Snapshot.ExitCode == 0))
            {
                return (update.ResourceId, update.Snapshot);
            }
        }
        throw new OperationCanceledException(cancellationToken);
    }

    /// <summary>
    /// Which resource held the start up, and in what state ("a task was canceled" alone explains nothing), then what
    /// each instance that was not healthy wrote: its error lines first (an exception at start scrolls out of the last
    /// lines behind the shutdown it causes), then its last lines. A replicated project has no state under its own name,
    /// so each replica is named (catalog-xk2q…).
    /// </summary>
    private static async Task<string> StartReportAsync(DistributedApplication app)
    {
        var instances = await InstanceStatesAsync(app);
        var snapshots = Resources.SelectMany(name => instances.Where(i => i.Name == name).Select(i => (Name: i.Id, Snapshot: (CustomResourceSnapshot?)i.Snapshot))
            .DefaultIfEmpty((Name: name, Snapshot: app.ResourceNotifications.TryGetCurrentState(name, out var state) ? state.Snapshot : null))).ToList();
        var states = string.Join("; ", snapshots.Select(r => r.Snapshot is { } snapshot
            ? $"{r.Name}: {snapshot.State?.Text}{(snapshot.ExitCode is { } code ? $" (exit code {code})" : "")} {snapshot.HealthStatus} {string.Join(" ", snapshot.HealthReports.Where(h => h.Status != HealthStatus.Healthy).Select(h => $"[{h.Name}: {h.Description ?? h.ExceptionText}]"))}"
            : $"{r.Name}: unknown"));
        var logs = new List<string>();
        foreach (var (name, _) in snapshots.Where(r => r.Snapshot?.HealthStatus != HealthStatus.Healthy))
        {
            var lines = (await ShopReference.Hosting.ResourceLogs.LastLinesAsync(
                app.Services.GetRequiredService<ResourceLoggerService>(), name, 400, CancellationToken.None)).Select(Plain).ToList();
            var errors = ErrorLines(lines);
            logs.Add($"--- {name}'s errors{(errors.Count > 0 ? ":\n" + string.Join("\n", errors) : ": none")}\n--- last lines of {name}:\n" +
                (lines.Count == 0 ? "(nothing)" : string.Join("\n", lines.TakeLast(30))));
        }
        return $"{states}\n{string.Join("\n", logs)}";
    }

    /// <summary>
    /// Each instance of <paramref name="resource"/>: its state and health, its error lines and its last lines. For the
    /// message of a test that waited in vain on what the resource does in the background (a consumer that never caught
    /// up says here whether its process ended or what it logged).
    /// </summary>
    public async Task<string> InstancesReportAsync(string resource)
    {
        var report = new List<string>();
        foreach (var (_, id, snapshot) in (await InstanceStatesAsync(App)).Where(i => i.Name == resource))
        {
            var lines = (await ShopReference.Hosting.ResourceLogs.LastLinesAsync(
                App.Services.GetRequiredService<ResourceLoggerService>(), id, 400, CancellationToken.None)).Select(Plain).ToList();
            var errors = ErrorLines(lines);
            report.Add($"--- {id}: {snapshot.State?.Text}{(snapshot.ExitCode is { } code ? $" (exit code {code})" : "")} {snapshot.HealthStatus}\n" +
                $"errors:{(errors.Count > 0 ? "\n" + string.Join("\n", errors) : " none")}\nlast lines:\n{string.Join("\n", lines.TakeLast(15))}");
        }
        return report.Count == 0 ? $"no instance of {resource}" : string.Join("\n", report);
    }

    // The runtime's report of an exception that ended the process, and the console logger's error level marks ("fail:",
    // "crit:"), each with the line after it: a mark stands on a line of its own, with the message on the next.
    private static List<string> ErrorLines(IReadOnlyList<string> lines)
    {
        var picked = new SortedSet<int>();
        for (var i = 0; i < lines.Count; i++)
        {
            if (lines[i].Contains("Unhandled exception", StringComparison.Ordinal))
            {
                picked.Add(i);
            }
            else if (lines[i].Contains("fail: ", StringComparison.Ordinal) || lines[i].Contains("crit: ", StringComparison.Ordinal))
            {
                picked.Add(i);
                picked.Add(Math.Min(i + 1, lines.Count - 1));
            }
        }
        return [.. picked.Take(16).Select(i => lines[i])];
    }

    private static string Plain(string line) => AnsiEscape().Replace(line, "");

    [GeneratedRegex(@"\x1b\[[0-9;]*m")]
    private static partial Regex AnsiEscape();

    // The latest state of every resource instance: watching replays each one's current state first, then waits for
    // changes, so a short watch is enough.
    private static async Task<List<(string Name, string Id, CustomResourceSnapshot Snapshot)>> InstanceStatesAsync(DistributedApplication app)
    {
        var latest = new Dictionary<string, (string Name, string Id, CustomResourceSnapshot Snapshot)>(StringComparer.Ordinal);
        using var replayed = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await foreach (var update in app.ResourceNotifications.WatchAsync(replayed.Token))
            {
                latest[update.ResourceId] = (update.Resource.Name, update.ResourceId, update.Snapshot);
            }
        }
        catch (OperationCanceledException) when (replayed.IsCancellationRequested)
        {
        }
        return [.. latest.Values.OrderBy(i => i.Id, StringComparer.Ordinal)];
    }

    /// <summary>The last lines a resource logged (its console).</summary>
    private static async Task<string> RecentLogAsync(DistributedApplication app, string resource, int lines)
    {
        var collected = await ShopReference.Hosting.ResourceLogs.LastLinesAsync(
            app.Services.GetRequiredService<ResourceLoggerService>(), resource, lines, CancellationToken.None);
        return collected.Count == 0 ? "(nothing)" : string.Join("\n", collected);
    }
}
