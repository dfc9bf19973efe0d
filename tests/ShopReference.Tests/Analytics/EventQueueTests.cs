using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using ShopReference.Contracts.Events;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.Tests.Analytics;

/// <summary>
/// The queue that takes views off the request path, against a real server: every event handed over is appended exactly
/// once or counted as dropped — under parallel load, with Valkey behind (writes paused) and at shutdown.
/// </summary>
public sealed class EventQueueTests
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Events_handed_over_by_64_parallel_requests_are_each_appended_exactly_once()
    {
        const int Requests = 64, EventsEach = 50;
        await using var valkey = await TestValkeyServer.StartAsync();
        await using var kit = await Kit.StartAsync(valkey);

        var ids = await Task.WhenAll(Enumerable.Range(0, Requests).Select(r => Task.Run(() =>
            Enumerable.Range(0, EventsEach).Select(i =>
            {
                var e = View($"r{r}-{i}");
                Assert.True(kit.Queue.Enqueue(e));
                return e.Id;
            }).ToArray(), Ct)));

        await Eventually.UntilAsync(async () => await kit.StreamLengthAsync() == Requests * EventsEach, TimeSpan.FromSeconds(30),
            "every event appended", cancellationToken: Ct);
        var appended = await kit.EventIdsAsync();
        Assert.Equal(ids.SelectMany(i => i).Order(StringComparer.Ordinal), appended.Order(StringComparer.Ordinal)); // each once, none other
        Assert.Equal(0, kit.Publisher.Dropped);
    }

    [Fact]
    public async Task With_Valkey_behind_a_full_queue_drops_and_counts_so_every_event_is_appended_or_counted()
    {
        const int Events = 1_000, Capacity = 100;
        await using var valkey = await TestValkeyServer.StartAsync();
        await using var kit = await Kit.StartAsync(valkey, Capacity);

        // Held until every event was offered, however slowly a busy machine runs the loop: a pause that ran out half-way
        // would let more through than the queue holds.
        await kit.PauseWritesAsync(TimeSpan.FromSeconds(10));
        var refused = Enumerable.Range(0, Events).Count(i => !kit.Queue.Enqueue(View($"e{i}")));
        await kit.UnpauseAsync();

        await Eventually.UntilAsync(async () => await kit.StreamLengthAsync() + kit.Publisher.Dropped == Events, TimeSpan.FromSeconds(30),
            () => $"appended + dropped reaches {Events} (dropped {kit.Publisher.Dropped})", cancellationToken: Ct);
        Assert.True(refused > 0, "the queue never filled: the test did not hold Valkey behind");
        Assert.Equal(refused, kit.Publisher.Dropped); // every drop is a refusal the caller saw, and counted
        var appended = await kit.EventIdsAsync();
        Assert.Equal(appended.Count, appended.Distinct().Count());
        Assert.InRange(appended.Count, Capacity, 2 * Capacity); // what was queued, plus at most one batch the loop held
    }

    [Fact]
    public async Task At_shutdown_the_queue_sends_what_it_holds_and_counts_what_comes_after()
    {
        const int Events = 500;
        await using var valkey = await TestValkeyServer.StartAsync();
        await using var kit = await Kit.StartAsync(valkey);

        await kit.PauseWritesAsync(TimeSpan.FromSeconds(1)); // so the events are still queued when the stop begins
        for (var i = 0; i < Events; i++)
        {
            Assert.True(kit.Queue.Enqueue(View($"e{i}")));
        }
        await kit.Queue.StopAsync(Ct);

        Assert.Equal(Events, await kit.StreamLengthAsync()); // drained before the stop returned
        Assert.False(kit.Queue.Enqueue(View("late")));
        Assert.Equal(1, kit.Publisher.Dropped);
    }

    private static AnalyticsEvent View(string id) => new(id, EventTypes.ProductViewed, DateTimeOffset.UtcNow, "visitor", 7);

    private sealed class Kit : IAsyncDisposable
    {
        private readonly ConnectionMultiplexer _connection;
        private readonly ConnectionMultiplexer _admin;
        private readonly ServiceProvider _services;

        private Kit(ConnectionMultiplexer connection, ConnectionMultiplexer admin, ServiceProvider services, int capacity)
        {
            _connection = connection;
            _admin = admin;
            _services = services;
            Publisher = new EventPublisher(connection, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<EventPublisher>.Instance);
            Queue = new EventQueue(Publisher, NullLogger<EventQueue>.Instance, capacity);
        }

        public EventPublisher Publisher { get; }
        public EventQueue Queue { get; }

        public static async Task<Kit> StartAsync(TestValkeyServer valkey, int capacity = EventQueue.DefaultCapacity)
        {
            // Timeouts well above the pauses, so nothing in flight is given up on (and counted as dropped) while it waits.
            var kit = new Kit(await ConnectionMultiplexer.ConnectAsync(valkey.ConnectionString + ",syncTimeout=15000,asyncTimeout=15000"),
                await ConnectionMultiplexer.ConnectAsync(valkey.ConnectionString + ",allowAdmin=true"),
                new ServiceCollection().AddMetrics().BuildServiceProvider(), capacity);
            await kit.Queue.StartAsync(CancellationToken.None);
            return kit;
        }

        public Task PauseWritesAsync(TimeSpan duration) =>
            _admin.GetServers()[0].ExecuteAsync("CLIENT", "PAUSE", (long)duration.TotalMilliseconds, "WRITE");

        public Task UnpauseAsync() => _admin.GetServers()[0].ExecuteAsync("CLIENT", "UNPAUSE");

        public Task<long> StreamLengthAsync() => _admin.GetDatabase().StreamLengthAsync(EventStream.Key);

        public async Task<List<string>> EventIdsAsync() =>
            [.. (await _admin.GetDatabase().StreamRangeAsync(EventStream.Key)).Select(entry => (string)entry["id"]!)];

        public async ValueTask DisposeAsync()
        {
            await Queue.StopAsync(CancellationToken.None);
            Queue.Dispose();
            await _connection.DisposeAsync();
            await _admin.DisposeAsync();
            await _services.DisposeAsync();
        }
    }
}
