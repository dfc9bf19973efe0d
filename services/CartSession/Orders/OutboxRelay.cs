using System.Globalization;
using Npgsql;
using ShopReference.Contracts.Events;
using ShopReference.Valkey.Resilience;

namespace ShopReference.CartSession.Orders;

/// <summary>
/// The transactional outbox's relay: <c>order.placed</c> is written to <c>outbox</c> in the order's own transaction, and
/// this worker appends what is there to the event stream, then deletes it. At least once: a relay that dies between
/// the append and the delete appends again, and analytics counts an event once by its id (<c>order-{id}</c>). So an
/// order placed while Valkey is down is counted once it returns, and one whose commit failed is never counted. Several
/// replicas relay side by side: each locks the rows it takes (<c>FOR UPDATE SKIP LOCKED</c>).
/// </summary>
public sealed class OutboxRelay(NpgsqlDataSource dataSource, EventPublisher publisher, OrdersDatabase schema, ILogger<OutboxRelay> logger)
    : BackgroundService
{
    /// <summary>How often the outbox is looked at when nobody nudges.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private const int BatchSize = 200;
    private readonly SemaphoreSlim _nudge = new(0, 1);

    /// <summary>Wakes the relay now (a checkout just committed an event).</summary>
    public void Nudge()
    {
        if (_nudge.CurrentCount == 0)
        {
            try
            {
                _nudge.Release();
            }
            catch (SemaphoreFullException)
            {
                // already nudged
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await schema.Completion.WaitAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                while (await RelayAsync(stoppingToken) == BatchSize)
                {
                    // a full batch: there may be more
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException || ValkeyFailures.IsUnavailable(ex))
            {
                // Nothing is lost: the rows stay in the outbox and the next round appends them.
                logger.LogWarning("Order events wait in the outbox: {Message}", ex.Message);
            }
            await _nudge.WaitAsync(Interval, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>Appends one batch of waiting events to the stream and removes them from the outbox; returns how many.</summary>
    public async Task<int> RelayAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var events = new List<(long Row, AnalyticsEvent Event)>();
        await using (var select = new NpgsqlCommand(
            $"select id, event_id, type, occurred_at, visitor, lines from outbox order by id limit {BatchSize} for update skip locked", connection, transaction))
        await using (var reader = await select.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var lines = reader.GetString(5).Split(',').Select(pair => pair.Split(':'))
                    .Select(p => (long.Parse(p[0], CultureInfo.InvariantCulture), int.Parse(p[1], CultureInfo.InvariantCulture))).ToList();
                events.Add((reader.GetInt64(0), new AnalyticsEvent(reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), Lines: lines)));
            }
        }
        if (events.Count == 0)
        {
            return 0;
        }
        foreach (var (_, analyticsEvent) in events)
        {
            await publisher.AppendAsync(analyticsEvent); // throws when Valkey cannot take it: the rows stay
        }
        await using var delete = new NpgsqlCommand("delete from outbox where id = any($1)", connection, transaction);
        delete.Parameters.Add(new() { Value = events.Select(e => e.Row).ToArray() });
        await delete.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return events.Count;
    }

    public override void Dispose()
    {
        _nudge.Dispose();
        base.Dispose();
    }
}
