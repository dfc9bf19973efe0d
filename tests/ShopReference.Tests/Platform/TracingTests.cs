using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using ShopReference.Testing;
using ShopReference.Tests.Analytics;
using ShopReference.Tests.Infrastructure;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

/// <summary>
/// What a service records as traces, seen the way the exporter sees it (an activity is exported only when it is
/// recorded): the analytics service in process, with the service defaults every service runs, against the real servers.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class TracingTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Idle_polls_leave_almost_no_traces_and_a_batch_applied_is_one_trace_with_its_valkey_calls_beneath_it()
    {
        using var recorded = new RecordedActivities();
        await using var admin = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString + ",allowAdmin=true");
        await AnalyticsKit.ResetAsync(admin);
        await using var service = await InProcessService.AnalyticsAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:valkey"] = fixture.Valkey.ConnectionString,
            ["ConnectionStrings:analyticsdb"] = await fixture.Postgres.CreateDatabaseAsync("tracing"),
            ["services:catalog:http:0"] = "http://127.0.0.1:9", // never called here
        });

        // Idle: the consumer polls the stream (XREADGROUP, about every 100 ms), and claims, samples and rolls up on
        // timers. Counted on the server, until it has polled at least 80 times.
        var pollsBefore = await XReadGroupCallsAsync(admin);
        await Eventually.UntilAsync(async () => await XReadGroupCallsAsync(admin) - pollsBefore >= 80, TimeSpan.FromSeconds(60),
            "the consumer never polled 80 times", TimeSpan.FromMilliseconds(500), Ct);
        // Client spans without a parent: the background calls (Valkey, SQL) that used to make one trace each.
        var idleTraces = recorded.Roots().Count(a => a.Kind == ActivityKind.Client);

        // In one transaction, so the consumer reads the 50 as one batch (a pipeline can be read half-way).
        await AnalyticsKit.AppendAtomicallyAsync(admin, [.. AnalyticsKit.Views(50)]);
        // The listener hears every service hosted in this test process: this service's batches carry its consumer's name
        // (another test's consumer once handed this one a batch of 256).
        var consumer = service.Services.GetRequiredService<ShopReference.Analytics.Counting.EventConsumer>().Name;
        bool Ours(Activity a) => a.OperationName == "analytics apply batch" && (string?)a.GetTagItem("shop.analytics.consumer") == consumer;
        await Eventually.UntilAsync(() => Task.FromResult(recorded.Roots().Any(Ours)),
            TimeSpan.FromSeconds(30), "no trace of the batch applied", cancellationToken: Ct);

        // 80 polls and the timers' calls; one in a hundred is kept, so the loop stays visible. Allow for chance.
        Assert.True(idleTraces <= 10, $"{idleTraces} traces while idle: {string.Join(", ", recorded.Roots().Where(a => a.Kind == ActivityKind.Client).Take(20).Select(a => a.DisplayName))}");
        var batch = recorded.Roots().First(Ours);
        Assert.Equal(50, (int)batch.GetTagItem("shop.analytics.entries")!);
        // Its scripts (one per partition touched, and the acknowledgement) are recorded as its children.
        await Eventually.UntilAsync(() => Task.FromResult(recorded.ChildrenOf(batch).Count >= 2), TimeSpan.FromSeconds(30),
            "the batch's Valkey calls were not recorded beneath it", cancellationToken: Ct);
    }

    /// <summary>XREADGROUP calls the server has run (every primary of a cluster), from <c>INFO commandstats</c>.</summary>
    private static async Task<long> XReadGroupCallsAsync(IConnectionMultiplexer admin)
    {
        var calls = 0L;
        foreach (var primary in admin.GetServers().Where(s => !s.IsReplica))
        {
            var line = (await primary.InfoAsync("commandstats")).SelectMany(g => g).FirstOrDefault(p => p.Key == "cmdstat_xreadgroup").Value;
            if (line is not null) calls += long.Parse(line.Split(',')[0]["calls=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        }
        return calls;
    }

    /// <summary>Every activity that ended recorded (what an exporter would send), whatever its source.</summary>
    private sealed class RecordedActivities : IDisposable
    {
        private readonly ConcurrentQueue<Activity> _ended = new();
        private readonly ActivityListener _listener;

        public RecordedActivities()
        {
            // Listens without voting: None leaves the sampling decision to the service's own tracer provider.
            _listener = new ActivityListener
            {
                ShouldListenTo = _ => true,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.None,
                ActivityStopped = activity =>
                {
                    if (activity.Recorded) _ended.Enqueue(activity);
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public List<Activity> Roots() => [.. _ended.Where(a => a.Parent is null && a.ParentSpanId == default)];

        public List<Activity> ChildrenOf(Activity parent) => [.. _ended.Where(a => a.ParentSpanId == parent.SpanId)];

        public void Dispose() => _listener.Dispose();
    }
}
