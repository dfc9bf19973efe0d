using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using StackExchange.Redis;

namespace ShopReference.Tests.Analytics;

/// <summary>The consumer group against a real server: crashes, competing consumers, redelivery and bad entries, counted.</summary>
[Collection(ServersCollection.Name)]
public sealed class EventConsumerTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_consumer_killed_mid_batch_leaves_its_entries_to_another_and_every_counter_is_exactly_N()
    {
        const int N = 2_000;
        await using var survivorConnection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(survivorConnection);
        await AnalyticsKit.AppendAsync(survivorConnection, AnalyticsKit.Views(N));

        // The victim reads a batch, applies part of it, and dies before the rest: those entries stay pending for it.
        await using (var victimConnection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString))
        {
            var victim = AnalyticsKit.Consumer(victimConnection, "victim");
            await victim.EnsureGroupAsync();
            var batch = await victim.ReadAsync();
            await victim.ApplyAsync(batch.Take(100).ToArray());
            Assert.Equal(256, batch.Length);
        }
        Assert.Equal(156, await AnalyticsKit.PendingAsync(survivorConnection));

        var survivor = AnalyticsKit.Consumer(survivorConnection, "survivor", claimAfter: TimeSpan.Zero);
        var claimed = await survivor.ClaimAbandonedAsync();
        await survivor.DrainAsync();

        Assert.Equal(156, claimed);
        Assert.Equal(N - 100, survivor.Counters.Applied);
        Assert.Equal(0, survivor.Counters.Duplicates);
        Assert.Equal(0, await AnalyticsKit.PendingAsync(survivorConnection));
        var views = await AnalyticsKit.BucketAsync(survivorConnection, "views");
        Assert.Equal(Enumerable.Range(1, 10).ToDictionary(p => (long)p, _ => (long)(N / 10)), views);
        var minutes = await new AnalyticsReads(survivorConnection).MinutesAsync("views", 5);
        Assert.Equal(N, minutes.Sum(m => m.Value));
    }

    [Fact]
    public async Task An_event_of_another_type_under_an_order_s_id_cannot_hide_the_order()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var now = DateTimeOffset.UtcNow;
        // A view that squats on the id the real order will carry, applied first, then the order itself.
        await AnalyticsKit.AppendAsync(connection, [new AnalyticsEvent("order-7", EventTypes.ProductViewed, now, "squatter", 31)]);
        var consumer = AnalyticsKit.Consumer(connection, "c");
        await consumer.DrainAsync();
        await AnalyticsKit.AppendAsync(connection, [new AnalyticsEvent("order-7", EventTypes.OrderPlaced, now, "buyer", Lines: [(32, 2)])]);
        await consumer.DrainAsync();

        Assert.Equal((2, 0), (consumer.Counters.Applied, consumer.Counters.Duplicates));
        Assert.Equal(new Dictionary<long, long> { [32] = 2 }, await AnalyticsKit.BucketAsync(connection, "sold"));
        Assert.Equal(new Dictionary<long, long> { [31] = 1 }, await AnalyticsKit.BucketAsync(connection, "views"));
    }

    [Fact]
    public async Task Two_consumers_in_the_group_apply_each_event_once()
    {
        const int N = 10_000;
        await using var first = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await using var second = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(first);
        var consumers = new[] { AnalyticsKit.Consumer(first, "a", batch: 64), AnalyticsKit.Consumer(second, "b", batch: 64) };
        await consumers[0].EnsureGroupAsync();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = consumers.Select(c => c.RunAsync(stop.Token)).ToArray();

        // Orders of two lines each, published while both consumers run.
        var orders = Enumerable.Range(0, N).Select(i => new AnalyticsEvent($"order-{i}", EventTypes.OrderPlaced, DateTimeOffset.UtcNow,
            $"visitor-{i}", Lines: [(i % 5 + 1, 1), (100, 2)]));
        await AnalyticsKit.AppendAsync(first, orders);
        await Eventually.UntilAsync(() => consumers.Sum(c => c.Counters.Applied) >= N, TimeSpan.FromSeconds(60), "both consumers applied N events", cancellationToken: Ct);
        await stop.CancelAsync();
        await Task.WhenAll(running);

        Assert.Equal(N, consumers.Sum(c => c.Counters.Applied));
        Assert.All(consumers, c => Assert.True(c.Counters.Applied > 0, $"consumer {c.Name} got no work"));
        Assert.Equal(0, consumers.Sum(c => c.Counters.Duplicates));
        var sold = await AnalyticsKit.BucketAsync(first, "sold");
        Assert.Equal(2L * N, sold[100]);
        Assert.Equal(N, Enumerable.Range(1, 5).Sum(p => sold[p]));
        var minutes = await new AnalyticsReads(first).MinutesAsync("orders", 5);
        Assert.Equal(N, minutes.Sum(m => m.Value));
    }

    [Fact]
    public async Task A_consumer_that_waits_for_a_batch_to_fill_applies_a_trickle_in_few_batches_and_each_event_once()
    {
        var fillWait = TimeSpan.FromMilliseconds(500);
        // The control: the same trickle to a consumer that reads again at once. What it does on this machine, under this
        // load, is what the wait is compared with (a slow machine batches a trickle by itself).
        var control = await TrickleAsync(TimeSpan.Zero);
        var patient = await TrickleAsync(fillWait);

        // Every read that did not fill a batch was followed by the wait, so the reads that found something number at most
        // one per wait in the time it all took (plus the first and the last).
        var bound = (int)(patient.Elapsed / fillWait) + 2;
        Assert.True(patient.Batches <= bound,
            $"{patient.Batches} batches in {patient.Elapsed.TotalMilliseconds:0} ms; at most {bound} with a {fillWait.TotalMilliseconds:0} ms wait");
        Assert.True(patient.Batches * 2 <= control.Batches,
            $"{patient.Batches} batches with the wait against {control.Batches} without it: the wait did not gather the trickle");
    }

    // 30 chunks of 10 views, a moment apart, as a shop's views arrive, to one consumer; each applied exactly once.
    private async Task<(long Batches, TimeSpan Elapsed)> TrickleAsync(TimeSpan fillWait)
    {
        const int Chunks = 30, PerChunk = 10;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var consumer = new EventConsumer(connection, "trickled", new EventConsumerOptions { FillWait = fillWait }, NullLogger.Instance);
        await consumer.EnsureGroupAsync();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var running = consumer.RunAsync(stop.Token);

        // The pause shapes the load; nothing waits on it for a result.
        foreach (var chunk in AnalyticsKit.Views(Chunks * PerChunk).Chunk(PerChunk))
        {
            await AnalyticsKit.AppendAsync(connection, chunk);
            await Task.Delay(20, Ct);
        }
        await Eventually.UntilAsync(() => consumer.Counters.Applied >= Chunks * PerChunk, TimeSpan.FromSeconds(60), "every event applied", cancellationToken: Ct);
        var elapsed = started.Elapsed;
        await stop.CancelAsync();
        await running;

        Assert.Equal((Chunks * PerChunk, 0L), (consumer.Counters.Applied, consumer.Counters.Duplicates));
        Assert.Equal(Chunks * PerChunk, (await AnalyticsKit.BucketAsync(connection, "views")).Values.Sum());
        return (consumer.Counters.Batches, elapsed);
    }

    [Fact]
    public async Task Members_that_left_are_forgotten_only_when_nothing_is_pending_for_them()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        await AnalyticsKit.AppendAsync(connection, AnalyticsKit.Views(20));
        var finished = AnalyticsKit.Consumer(connection, "finished", batch: 10);
        await finished.EnsureGroupAsync();
        await finished.ReadNewAsync(); // read and applied: nothing pending
        await AnalyticsKit.Consumer(connection, "crashed", batch: 10).ReadAsync(); // read, never applied: 10 pending
        var survivor = new EventConsumer(connection, "survivor", new EventConsumerOptions { ForgetIdleConsumersAfter = TimeSpan.Zero }, NullLogger.Instance);

        var forgotten = await survivor.ForgetIdleConsumersAsync();

        Assert.Equal(1, forgotten);
        var members = await connection.GetDatabase().StreamConsumerInfoAsync(EventStream.Key, EventStream.ConsumerGroup);
        Assert.Equal(["crashed"], members.Select(m => (string)m.Name!));
        Assert.Equal(10, await AnalyticsKit.PendingAsync(connection));
    }

    [Fact]
    public async Task Re_published_events_are_skipped_by_their_id_and_count_once()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var consumer = AnalyticsKit.Consumer(connection, "c");
        await AnalyticsKit.AppendAsync(connection, AnalyticsKit.Views(300));
        await consumer.DrainAsync();

        await AnalyticsKit.AppendAsync(connection, AnalyticsKit.Views(300)); // a publisher retrying, or the replay command
        await consumer.DrainAsync();

        Assert.Equal((300, 300), (consumer.Counters.Applied, consumer.Counters.Duplicates));
        Assert.Equal(300, (await AnalyticsKit.BucketAsync(connection, "views")).Values.Sum());
        Assert.Equal(0, await AnalyticsKit.PendingAsync(connection));
    }

    [Fact]
    public async Task A_batch_redelivered_after_only_some_partitions_applied_it_completes_the_rest_and_counts_each_order_once()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var now = DateTimeOffset.UtcNow;
        // 200 orders of 4 lines each, over products in every partition.
        var orders = Enumerable.Range(0, 200).Select(i => new AnalyticsEvent($"order-{i}", EventTypes.OrderPlaced, now, $"visitor-{i}",
            Lines: [.. Enumerable.Range(0, 4).Select(l => ((long)(i * 4 + l) % 64 + 1, l + 1))])).ToList();
        var consumer = AnalyticsKit.Consumer(connection, "c");
        await AnalyticsKit.AppendAsync(connection, orders);
        await consumer.DrainAsync();

        // As if the first delivery had crashed after the odd partitions applied it, before the even ones did and before
        // the acknowledgement: the even partitions hold nothing, and the batch is delivered again.
        foreach (var partition in AnalyticsKeys.AllPartitions.Where(p => p % 2 == 0))
        {
            await Keyspace.DeleteAsync(connection, $"analytics:*{{{AnalyticsKeys.PartitionTag(partition)}}}*");
        }
        await AnalyticsKit.AppendAsync(connection, orders);
        await consumer.DrainAsync();

        var expected = orders.SelectMany(o => o.Lines!).GroupBy(l => l.ProductId).ToDictionary(g => g.Key, g => (long)g.Sum(l => l.Quantity));
        Assert.Equal(expected, await AnalyticsKit.BucketAsync(connection, "sold"));
        Assert.Equal(200, (await new AnalyticsReads(connection).MinutesAsync("orders", 5)).Sum(m => m.Value));
        Assert.Equal(400, consumer.Counters.Applied + consumer.Counters.Duplicates);
        Assert.Equal(0, await AnalyticsKit.PendingAsync(connection));
    }

    [Fact]
    public async Task Invalid_entries_are_dead_lettered_with_their_reason_acknowledged_and_count_nothing()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var consumer = AnalyticsKit.Consumer(connection, "c");
        var database = connection.GetDatabase();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await database.StreamAddAsync(EventStream.Key, [new("id", "e1"), new("type", "product.liked"), new("ts", now), new("product", 1)]);
        await database.StreamAddAsync(EventStream.Key, [new("id", "e2"), new("type", EventTypes.ProductViewed), new("ts", now)]);
        await database.StreamAddAsync(EventStream.Key, [new("id", "e3"), new("type", EventTypes.ProductViewed), new("ts", now - (long)TimeSpan.FromDays(3).TotalMilliseconds), new("product", 1)]);
        await database.StreamAddAsync(EventStream.Key, [new("type", EventTypes.ProductViewed)]);
        // Well formed but nobody's: a view without a visitor would let whoever reaches the stream steer the boards.
        await database.StreamAddAsync(EventStream.Key, [new("id", "e5"), new("type", EventTypes.ProductViewed), new("ts", now), new("product", 1)]);
        await AnalyticsKit.AppendAsync(connection, AnalyticsKit.Views(1));

        await consumer.DrainAsync();

        Assert.Equal((1, 5), (consumer.Counters.Applied, consumer.Counters.DeadLettered));
        var dead = await database.StreamRangeAsync(AnalyticsKeys.DeadLetters);
        Assert.Equal(5, dead.Length);
        Assert.All(dead, d => Assert.False(d["reason"].IsNullOrEmpty));
        Assert.Contains("type", (string?)dead[0]["reason"]);
        Assert.Contains("timestamp", (string?)dead[2]["reason"]);
        Assert.Contains("visitorId", (string?)dead[4]["reason"]);
        Assert.Equal(0, await AnalyticsKit.PendingAsync(connection));
        Assert.Equal(1, (await AnalyticsKit.BucketAsync(connection, "views")).Values.Sum());
    }

    [Fact]
    public async Task Hyperloglog_unique_visitors_are_within_two_percent_of_the_exact_count_of_100000()
    {
        const int Visitors = 100_000;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        await AnalyticsKit.ResetAsync(connection);
        var at = DateTimeOffset.UtcNow;
        await AnalyticsKit.AppendAsync(connection, AnalyticsKit.Views(Visitors, products: 1000, visitors: Visitors, at: at));
        await AnalyticsKit.Consumer(connection, "c", batch: 1000).DrainAsync();

        var reads = new AnalyticsReads(connection);
        var day = DateOnly.FromDateTime(at.UtcDateTime);
        var estimate = await reads.UniqueVisitorsAsync(day);
        var week = await reads.UniqueVisitorsAsync(day, days: 7);

        Assert.InRange(Math.Abs(estimate - Visitors) / (double)Visitors, 0, 0.02);
        Assert.Equal(estimate, week); // the other six days are empty: the merge adds nobody
    }

    [Fact]
    public async Task A_consumer_survives_a_valkey_restart_and_resumes_from_the_group_position_without_applying_anything_twice()
    {
        // Its own server, persistent like the app's: it is stopped and comes back with the stream and the group.
        await using var valkey = await TestValkeyServer.StartAsync(persistent: true);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(valkey.FastFailConnectionString);
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var publisher = new EventPublisher(connection, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<EventPublisher>.Instance);
        var consumer = AnalyticsKit.Consumer(connection, "c");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = consumer.RunAsync(stop.Token);
        foreach (var e in AnalyticsKit.Views(50))
        {
            Assert.True(await publisher.PublishAsync(e));
        }
        await Eventually.UntilAsync(() => consumer.Counters.Applied == 50, TimeSpan.FromSeconds(20), "the first 50 applied", cancellationToken: Ct);

        await valkey.StopAsync();
        await Eventually.UntilAsync(() => !connection.IsConnected, TimeSpan.FromSeconds(20), "the client noticed the outage", cancellationToken: Ct);
        Assert.False(await publisher.PublishAsync(AnalyticsKit.Views(1).Single())); // dropped at once, counted
        Assert.Equal(1, publisher.Dropped);

        await valkey.RestartAsync();
        await Eventually.UntilAsync(() => connection.IsConnected, TimeSpan.FromSeconds(30), "the client reconnected", cancellationToken: Ct);
        foreach (var e in AnalyticsKit.Views(80).Skip(50))
        {
            Assert.True(await publisher.PublishAsync(e));
        }
        await Eventually.UntilAsync(() => consumer.Counters.Applied == 80, TimeSpan.FromSeconds(30), "the next 30 applied after the outage", cancellationToken: Ct);
        await stop.CancelAsync();
        await running;

        // Resumed where the group stood: the first 50 were not read again (they would show as duplicates).
        Assert.Equal(0, consumer.Counters.Duplicates);
        Assert.Equal(80, await connection.GetDatabase().StreamLengthAsync(EventStream.Key));
    }
}
