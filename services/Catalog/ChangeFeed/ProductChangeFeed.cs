using Microsoft.AspNetCore.OutputCaching;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;
using ShopReference.Catalog.Apis;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.Data;
using ShopReference.Catalog.Model;

namespace ShopReference.Catalog.ChangeFeed;

/// <summary>
/// Change-data capture: reads the <c>products</c> changes from PostgreSQL's logical replication (pgoutput, the
/// <c>catalog_products</c> publication, the <c>catalog_cache</c> slot) and writes each committed version through to the
/// cache (a deleted product leaves a tombstone), then evicts the listing pages. A change made by any writer, the API or
/// <c>psql</c>, reaches the cache.
/// <list type="bullet">
/// <item>A position is confirmed only after every cache write, tombstone and eviction of its transaction succeeded;
/// when Valkey cannot take one, the feed stops before confirming and the change is applied again when it reconnects.
/// The version guard makes that replay harmless.</item>
/// <item>When no product changes, the feed touches a heartbeat row every <see cref="HeartbeatInterval"/>, so it keeps
/// confirming and the server can release the WAL that other databases write (bounded WAL).</item>
/// <item>A slot that had to be recreated resets the cache (<see cref="ReplicationSlot"/>).</item>
/// <item>A slot streams to one connection at a time, so with several replicas one of them is the reader and the others
/// retry until it goes away: PostgreSQL elects the leader.</item>
/// </list>
/// </summary>
public sealed class ProductChangeFeed(
    NpgsqlDataSource dataSource, IConfiguration configuration, ProductCache cache, CatalogDatabase database, IOutputCacheStore outputCache,
    CatalogMetrics metrics, CatalogInitializer initializer, ReplicationSlot slot, ILogger<ProductChangeFeed> logger) : BackgroundService
{
    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(5);
    private long _lastConfirmedTicks;

    // The data source hides the password once opened; a replication connection needs the full connection string.
    private string ReplicationConnectionString => configuration.GetConnectionString("catalogdb")
        ?? throw new InvalidOperationException("ConnectionStrings:catalogdb is missing.");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await initializer.Completion.WaitAsync(stoppingToken);
        _ = SampleRetainedWalAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await StreamAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ObjectInUse)
            {
                logger.LogDebug("Another catalog instance reads the change feed; retrying in {Delay}.", RetryDelay);
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.ObjectNotInPrerequisiteState or PostgresErrorCodes.UndefinedObject)
            {
                // The slot was invalidated or dropped under us: drop what is left, and the next round recreates it.
                logger.LogWarning("Replication slot {Slot} cannot stream ({Message}); it will be recreated.", slot.Name, ex.MessageText);
                await TryAsync(() => slot.DropAsync(stoppingToken));
            }
            catch (Exception ex)
            {
                metrics.CdcRetried();
                logger.LogWarning(ex, "The change feed stopped before confirming what it had not applied; reconnecting in {Delay}.", RetryDelay);
            }
            await Task.Delay(RetryDelay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task StreamAsync(CancellationToken stoppingToken)
    {
        var replicationSlot = await slot.EnsureAsync(ReplicationConnectionString, stoppingToken);
        if (await slot.IsActiveAsync(stoppingToken))
        {
            return; // another replica is the reader; ask again after the retry delay
        }
        await using var connection = new LogicalReplicationConnection(ReplicationConnectionString);
        await connection.Open(stoppingToken);
        logger.LogInformation("Reading the product change feed from slot {Slot}.", slot.Name);

        using var streaming = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        Volatile.Write(ref _lastConfirmedTicks, Environment.TickCount64);
        var heartbeat = HeartbeatAsync(streaming.Token);
        try
        {
            var changed = new List<(Product Product, bool Inserted)>();
            var deleted = new List<long>();
            var reread = new List<long>();
            await foreach (var message in connection.StartReplication(replicationSlot,
                new PgOutputReplicationOptions(CatalogInitializer.Publication, PgOutputProtocolVersion.V1), stoppingToken))
            {
                switch (message)
                {
                    case InsertMessage insert when IsProducts(insert.Relation):
                        await AddAsync(insert.NewRow, inserted: true, changed, reread, stoppingToken);
                        break;
                    case UpdateMessage update when IsProducts(update.Relation):
                        await AddAsync(update.NewRow, inserted: false, changed, reread, stoppingToken);
                        break;
                    case KeyDeleteMessage delete when IsProducts(delete.Relation):
                        deleted.Add(await FirstColumnAsync(delete.Key, stoppingToken));
                        break;
                    case FullDeleteMessage delete when IsProducts(delete.Relation):
                        deleted.Add(await FirstColumnAsync(delete.OldRow, stoppingToken));
                        break;
                    case CommitMessage commit:
                        // Throws when Valkey cannot take a change: the position is then not confirmed, and it is replayed.
                        await ApplyAsync(changed, deleted, reread, stoppingToken);
                        if (changed.Count > 0 || deleted.Count > 0 || reread.Count > 0)
                        {
                            metrics.CdcApplied(DateTimeOffset.UtcNow - new DateTimeOffset(commit.TransactionCommitTimestamp, TimeSpan.Zero));
                        }
                        changed.Clear();
                        deleted.Clear();
                        reread.Clear();
                        // Only now is the change safe in the cache: acknowledge it, so a restart resumes after it and not before.
                        connection.SetReplicationStatus(commit.TransactionEndLsn);
                        await connection.SendStatusUpdate(stoppingToken);
                        Volatile.Write(ref _lastConfirmedTicks, Environment.TickCount64);
                        break;
                }
            }
        }
        finally
        {
            await streaming.CancelAsync();
            await heartbeat;
        }
    }

    private static bool IsProducts(RelationMessage relation) => relation.RelationName == "products";

    private async Task ApplyAsync(List<(Product Product, bool Inserted)> changed, List<long> deleted, List<long> reread, CancellationToken cancellationToken)
    {
        if (changed.Count == 0 && deleted.Count == 0 && reread.Count == 0)
        {
            return; // a heartbeat
        }
        // A row whose large column was not sent (unchanged TOAST) is read whole; what PostgreSQL holds now is at least
        // this version, and the version guard keeps whatever is newer.
        foreach (var id in reread)
        {
            if (await database.GetAsync(id, cancellationToken) is { } current)
            {
                changed.Add((current, false));
            }
        }
        foreach (var (product, inserted) in changed)
        {
            await cache.ApplyChangeAsync(product, inserted); // version-guarded: a newer write-through is never replaced by this one
        }
        foreach (var id in deleted)
        {
            await cache.ApplyDeleteAsync(id);
        }
        await ReplicationSlot.Strict(outputCache).EvictByTagAsync(CatalogApi.ListTag, cancellationToken);
    }

    // While this replica streams: when nothing was confirmed for a while, touch the heartbeat row. Its commit flows
    // through the feed like any other and is confirmed, so the slot's position follows the server's even when the
    // catalog is quiet and only other databases write.
    private async Task HeartbeatAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(HeartbeatInterval / 2);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                if (Environment.TickCount64 - Volatile.Read(ref _lastConfirmedTicks) < HeartbeatInterval.TotalMilliseconds)
                {
                    continue;
                }
                await TryAsync(async () =>
                {
                    await using var touch = dataSource.CreateCommand(
                        $"insert into {CatalogInitializer.HeartbeatTable} (id, at) values (1, now()) on conflict (id) do update set at = excluded.at");
                    await touch.ExecuteNonQueryAsync(cancellationToken);
                });
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SampleRetainedWalAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(SampleInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                await TryAsync(async () => metrics.RetainedWal(await slot.RetainedBytesAsync(cancellationToken)));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task TryAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            logger.LogDebug(ex, "A change-feed chore failed; it runs again at the next interval.");
        }
    }

    private static async Task AddAsync(ReplicationTuple row, bool inserted, List<(Product, bool)> changed, List<long> reread, CancellationToken cancellationToken)
    {
        var values = new List<object?>(9);
        var complete = true;
        await foreach (var value in row)
        {
            if (value.Kind == TupleDataKind.UnchangedToastedValue)
            {
                complete = false; // a large unchanged column was not sent: the row is read whole at the commit
                values.Add(null);
                continue;
            }
            values.Add(value.IsDBNull ? null : await value.Get<string>(cancellationToken));
        }
        var id = long.Parse((string)values[0]!, System.Globalization.CultureInfo.InvariantCulture);
        if (!complete)
        {
            reread.Add(id);
            return;
        }
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        changed.Add((new Product(id, (string)values[1]!, (string)values[2]!, (string)values[3]!, (string)values[4]!,
            decimal.Parse((string)values[5]!, inv), int.Parse((string)values[6]!, inv), int.Parse((string)values[7]!, inv),
            DateTimeOffset.Parse((string)values[8]!, inv)), inserted));
    }

    private static async Task<long> FirstColumnAsync(ReplicationTuple row, CancellationToken cancellationToken)
    {
        long id = 0;
        var first = true;
        await foreach (var value in row)
        {
            if (first && !value.IsDBNull)
            {
                id = long.Parse(await value.Get<string>(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
            }
            first = false;
        }
        return id;
    }
}
