using ShopReference.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using StackExchange.Redis;

namespace ShopReference.Tests.Analytics;

/// <summary>Shared steps of the analytics tests: a clean keyspace, events appended in bulk, consumers, and reads of what they counted.</summary>
internal static class AnalyticsKit
{
    /// <summary>Analytics keys are fixed (one stream per shop): each test starts from none.</summary>
    public static Task ResetAsync(IConnectionMultiplexer connection) => Keyspace.DeleteAsync(connection, AnalyticsKeys.Prefix + "*");

    /// <summary>Appends events as publishers do (XADD), pipelined.</summary>
    public static async Task AppendAsync(IConnectionMultiplexer connection, IEnumerable<AnalyticsEvent> events)
    {
        var database = connection.GetDatabase();
        foreach (var chunk in events.Chunk(1000))
        {
            var batch = database.CreateBatch();
            var adds = chunk.Select(e => batch.StreamAddAsync(EventStream.Key, e.ToFields())).ToArray();
            batch.Execute();
            await Task.WhenAll(adds);
        }
    }

    /// <summary>
    /// Appends events in one transaction (<c>MULTI</c>/<c>EXEC</c>), so a running consumer reads all of them or none: a
    /// pipeline alone can be read half-way when the server takes its commands in two reads of the socket.
    /// </summary>
    public static async Task AppendAtomicallyAsync(IConnectionMultiplexer connection, IReadOnlyCollection<AnalyticsEvent> events)
    {
        var transaction = connection.GetDatabase().CreateTransaction();
        var adds = events.Select(e => transaction.StreamAddAsync(EventStream.Key, e.ToFields())).ToArray();
        Assert.True(await transaction.ExecuteAsync(), "the transaction did not run");
        await Task.WhenAll(adds);
    }

    public static IEnumerable<AnalyticsEvent> Views(int count, int products = 10, int visitors = 500, DateTimeOffset? at = null) =>
        Enumerable.Range(0, count).Select(i => new AnalyticsEvent($"view-{i}", EventTypes.ProductViewed, at ?? DateTimeOffset.UtcNow,
            $"visitor-{i % visitors}", i % products + 1));

    public static EventConsumer Consumer(IConnectionMultiplexer connection, string name, TimeSpan? claimAfter = null, int batch = 256) =>
        new(connection, name, new EventConsumerOptions { BatchSize = batch, ClaimAfter = claimAfter ?? TimeSpan.FromSeconds(30) }, NullLogger.Instance);

    /// <summary>Product → count in the current hour's bucket of a board, all partitions merged.</summary>
    public static Task<Dictionary<long, long>> BucketAsync(IConnectionMultiplexer connection, string board, DateTime? hour = null) =>
        Leaderboards.ReadHourAsync(connection.GetDatabase(), board, hour ?? DateTime.UtcNow);

    public static async Task<long> PendingAsync(IConnectionMultiplexer connection) =>
        (await connection.GetDatabase().StreamPendingAsync(EventStream.Key, EventStream.ConsumerGroup)).PendingMessageCount;
}
