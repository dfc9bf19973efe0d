using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// A catalog replica killed while clients read through the gateway: the gateway routes to replicas past the
/// orchestrator's proxy (<see cref="ReplicaSpreadTests"/>), so until the AppHost's replica directory drops the dead one,
/// YARP can still pick it. Counted here: how many requests fail and for how long, that each failure is a quick 502 (no
/// hang), and that afterwards the survivor answers every request.
/// </summary>
[Collection(ReplicaLossCollection.Name)]
public sealed class ReplicaLossTests(ShopAppFixture fixture)
{
    private const string Service = "catalog";
    private const string Path = "/api/catalog/products/1";
    private const int Clients = 8;

    /// <summary>
    /// The bound this test holds the gateway to. Measured on 2 cores: failures ended 1.2 s after the kill on an idle
    /// machine, 4.4 s with three processes spinning on the CPU; the rest is room for a busier CI machine.
    /// </summary>
    private static readonly TimeSpan FailureWindow = TimeSpan.FromSeconds(15);

    /// <summary>How long after the directory changes the gateway may still pick the dead replica (file watcher, resolve).</summary>
    private static readonly TimeSpan ReloadAllowance = TimeSpan.FromSeconds(1);

    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_killed_replica_fails_requests_through_the_gateway_only_briefly_and_quickly_then_the_survivor_answers_all()
    {
        var replicas = await fixture.Shop.WaitForHealthyInstancesAsync(Service, 2, TimeSpan.FromSeconds(60));
        var directory = await fixture.Shop.EnvironmentOfAsync("rate-limit", ShopReference.Contracts.Routing.ReplicaDirectoryFile.EnvironmentVariable);
        await Eventually.UntilAsync(() => ReplicaDirectory.Listed(directory, Service) == 2, TimeSpan.FromSeconds(30),
            $"the replica directory never listed both replicas of {Service}", TimeSpan.FromMilliseconds(200), Ct);
        var victim = (await fixture.Shop.ReplicaProcessIdsAsync(Service, 2, TimeSpan.FromSeconds(60)))[0];

        var clock = Stopwatch.StartNew();
        var answers = new ConcurrentQueue<(TimeSpan At, HttpStatusCode? Status, string? Replica, TimeSpan Took)>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var readers = Enumerable.Range(0, Clients).Select(_ => ReadUntilAsync(clock, answers, stop.Token)).ToList();

        await Eventually.UntilAsync(() => answers.Count >= 100, TimeSpan.FromSeconds(60), "the readers never got going",
            TimeSpan.FromMilliseconds(50), Ct);
        var killedAt = clock.Elapsed;
        // The replica's whole process tree: the orchestrator starts a project as `dotnet run`, the service its child.
        using (var process = Process.GetProcessById(victim))
        {
            process.Kill(entireProcessTree: true);
        }
        // Load until the directory has dropped the replica, and 200 requests were sent after the gateway's allowance to
        // read the changed file (its watcher fires, YARP resolves again).
        await Eventually.UntilAsync(() => ReplicaDirectory.Listed(directory, Service) == 1, TimeSpan.FromSeconds(60),
            "the replica directory still lists the killed replica", TimeSpan.FromMilliseconds(100), Ct);
        var droppedAt = clock.Elapsed;
        var settledAt = droppedAt + ReloadAllowance;
        await Eventually.UntilAsync(() => answers.Count(a => a.At - a.Took > settledAt) >= 200, TimeSpan.FromSeconds(60),
            "too few answers after the directory dropped the replica", TimeSpan.FromMilliseconds(50), Ct);
        await stop.CancelAsync();
        await Task.WhenAll(readers);

        var all = answers.ToList();
        var failed = all.Where(a => a.Status != HttpStatusCode.OK).ToList();
        var summary = $"{all.Count} requests, {failed.Count} failed ({string.Join(", ", failed.GroupBy(f => f.Status?.ToString() ?? "no answer").Select(g => $"{g.Key} x{g.Count()}"))}), " +
            $"failures from {(failed.Count == 0 ? 0 : (failed.Min(f => f.At) - killedAt).TotalSeconds):0.0} s to {(failed.Count == 0 ? 0 : (failed.Max(f => f.At) - killedAt).TotalSeconds):0.0} s after the kill; " +
            $"directory updated {(droppedAt - killedAt).TotalSeconds:0.0} s after it";
        TestContext.Current.TestOutputHelper?.WriteLine(summary);

        Assert.All(all.Where(a => a.At < killedAt), a => Assert.Equal(HttpStatusCode.OK, a.Status)); // nothing failed before
        // A failure is the gateway's 502 for a refused connection: an answer, never a hang or a timeout.
        Assert.All(failed, f => Assert.True(f.Status == HttpStatusCode.BadGateway && f.Took < TimeSpan.FromSeconds(5), summary));
        Assert.All(failed, f => Assert.True(f.At - killedAt < FailureWindow, summary));
        // Every request sent once the gateway had read the directory was answered, by the same survivor.
        var after = all.Where(a => a.At - a.Took > settledAt).ToList();
        Assert.All(after, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        var survivor = Assert.Single(after.Select(a => a.Replica).Distinct());
        Assert.Contains(survivor, replicas);
        // Both replicas answered before the kill, so the readers did reach the one that died.
        Assert.Equal(2, all.Where(a => a.At < killedAt).Select(a => a.Replica).Distinct().Count());
    }

    // One client: reads in a loop, each from a fresh address every 50 requests so the anonymous quota never refuses one.
    private async Task ReadUntilAsync(Stopwatch clock, ConcurrentQueue<(TimeSpan, HttpStatusCode?, string?, TimeSpan)> answers, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            using var client = fixture.Shop.GatewayAsNewClient(out _);
            client.Timeout = TimeSpan.FromSeconds(10);
            for (var i = 0; i < 50 && !stop.IsCancellationRequested; i++)
            {
                var started = clock.Elapsed;
                try
                {
                    using var response = await client.GetAsync(Path, CancellationToken.None);
                    var replica = response.Headers.TryGetValues("X-Replica", out var names) ? names.Single() : null;
                    answers.Enqueue((clock.Elapsed, response.StatusCode, replica, clock.Elapsed - started));
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    answers.Enqueue((clock.Elapsed, null, null, clock.Elapsed - started)); // no answer: what the test forbids
                }
            }
        }
    }
}
