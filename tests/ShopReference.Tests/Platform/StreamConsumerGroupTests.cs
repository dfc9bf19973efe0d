using Microsoft.Extensions.Logging.Abstractions;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.Streams;
using StackExchange.Redis;

namespace ShopReference.Tests.Platform;

/// <summary>The reusable consumer-group member against a real server, with a handler of the test's own.</summary>
[Collection(ServersCollection.Name)]
public sealed class StreamConsumerGroupTests(ServersFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// An entry left pending by a member that died, which the handler refuses every time it is claimed (a script error
    /// on it, say), must not stop the survivor from reading what comes after: the claim fails at each interval, logged,
    /// and the new entries are handled in between.
    /// </summary>
    [Fact]
    public async Task A_claimed_entry_the_handler_always_refuses_does_not_stop_new_entries_from_being_handled()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Valkey.ConnectionString);
        var database = connection.GetDatabase();
        RedisKey stream = $"test:stream:{Guid.NewGuid():N}";
        var options = new StreamConsumerOptions { ClaimAfter = TimeSpan.Zero, ClaimInterval = TimeSpan.FromMilliseconds(200), MaxIdleWait = TimeSpan.FromMilliseconds(20) };
        try
        {
            // The dead member reads the poison entry and never acknowledges it.
            var dead = new StreamConsumerGroup(connection, stream, "g", "dead", options, NullLogger.Instance);
            await dead.EnsureGroupAsync();
            var poison = await database.StreamAddAsync(stream, "n", "poison");
            Assert.Single(await dead.ReadAsync());

            var handled = new HashSet<string>();
            var refusals = 0;
            async Task HandleAsync(IReadOnlyList<StreamEntry> entries)
            {
                if (entries.Any(e => e.Id == poison))
                {
                    Interlocked.Increment(ref refusals);
                    throw new RedisServerException("ERR the handler refuses this entry");
                }
                await database.StreamAcknowledgeAsync(stream, "g", [.. entries.Select(e => e.Id)]);
                lock (handled) handled.UnionWith(entries.Select(e => (string)e["n"]!));
            }
            var survivor = new StreamConsumerGroup(connection, stream, "g", "survivor", options, NullLogger.Instance);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var running = survivor.RunAsync(HandleAsync, stop.Token);
            await Eventually.UntilAsync(() => Volatile.Read(ref refusals) >= 1, TimeSpan.FromSeconds(30), "the poison entry claimed", cancellationToken: Ct);

            for (var i = 0; i < 20; i++)
            {
                await database.StreamAddAsync(stream, "n", $"good-{i}");
            }

            await Eventually.UntilAsync(() => { lock (handled) return handled.Count == 20; }, TimeSpan.FromSeconds(30),
                () => $"{handled.Count} of 20 new entries handled while the claim failed {refusals} times", cancellationToken: Ct);
            // The claim kept being tried (it is not given up on) while the new entries flowed.
            await Eventually.UntilAsync(() => Volatile.Read(ref refusals) >= 3, TimeSpan.FromSeconds(30), "the claim tried again", cancellationToken: Ct);
            await stop.CancelAsync();
            await running;
            Assert.Equal(1, (await database.StreamPendingAsync(stream, "g")).PendingMessageCount); // only the poison entry
        }
        finally
        {
            await database.KeyDeleteAsync(stream);
        }
    }
}
