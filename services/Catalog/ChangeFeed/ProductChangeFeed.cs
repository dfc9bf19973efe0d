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
/// cache (or removes a deleted product), then evicts the listing pages. A change made by any writer, the API or
/// <c>psql</c>, reaches the cache. Its position is acknowledged only after the cache has been updated, so a worker that
/// stops or crashes replays what it had not applied. A slot streams to one connection at a time, so with several
/// replicas one of them is the reader and the others retry until it goes away: PostgreSQL elects the leader.
/// </summary>
public sealed class ProductChangeFeed(
    NpgsqlDataSource dataSource, IConfiguration configuration, ProductCache cache, IOutputCacheStore outputCache, CatalogMetrics metrics,
    CatalogInitializer initializer, ILogger<ProductChangeFeed> logger) : BackgroundService
{
    public const string SlotName = "catalog_cache";
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(3);

    // The data source hides the password once opened; a replication connection needs the full connection string.
    private string ReplicationConnectionString => configuration.GetConnectionString("catalogdb")
        ?? throw new InvalidOperationException("ConnectionStrings:catalogdb is missing.");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await initializer.Completion.WaitAsync(stoppingToken);
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
            catch (Exception ex)
            {
                logger.LogWarning(ex, "The change feed stopped; reconnecting in {Delay}.", RetryDelay);
            }
            await Task.Delay(RetryDelay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task StreamAsync(CancellationToken stoppingToken)
    {
        var slot = await EnsureSlotAsync(stoppingToken);
        if (await SlotIsActiveAsync(stoppingToken))
        {
            return; // another replica is the reader; ask again after the retry delay
        }
        await using var connection = new LogicalReplicationConnection(ReplicationConnectionString);
        await connection.Open(stoppingToken);
        logger.LogInformation("Reading the product change feed from slot {Slot}.", SlotName);

        var changed = new List<Product>();
        var deleted = new List<long>();
        await foreach (var message in connection.StartReplication(slot,
            new PgOutputReplicationOptions(CatalogInitializer.Publication, PgOutputProtocolVersion.V1), stoppingToken))
        {
            switch (message)
            {
                case InsertMessage insert:
                    await AddAsync(insert.NewRow, changed, deleted, stoppingToken);
                    break;
                case UpdateMessage update:
                    await AddAsync(update.NewRow, changed, deleted, stoppingToken);
                    break;
                case KeyDeleteMessage delete:
                    deleted.Add(await FirstColumnAsync(delete.Key, stoppingToken));
                    break;
                case FullDeleteMessage delete:
                    deleted.Add(await FirstColumnAsync(delete.OldRow, stoppingToken));
                    break;
                case CommitMessage commit:
                    await ApplyAsync(changed, deleted, stoppingToken);
                    metrics.CdcApplied(DateTimeOffset.UtcNow - new DateTimeOffset(commit.TransactionCommitTimestamp, TimeSpan.Zero));
                    changed.Clear();
                    deleted.Clear();
                    // Only now is the change safe in the cache: acknowledge it, so a restart resumes after it and not before.
                    connection.SetReplicationStatus(commit.TransactionEndLsn);
                    await connection.SendStatusUpdate(stoppingToken);
                    break;
            }
        }
    }

    private async Task ApplyAsync(List<Product> changed, List<long> deleted, CancellationToken cancellationToken)
    {
        if (changed.Count == 0 && deleted.Count == 0)
        {
            return;
        }
        foreach (var product in changed)
        {
            await cache.StoreAsync(product); // version-guarded: a newer write-through is never replaced by this one
        }
        foreach (var id in deleted)
        {
            await cache.RemoveAsync(id);
        }
        await outputCache.EvictByTagAsync(CatalogApi.ListTag, cancellationToken);
    }

    private static async Task AddAsync(ReplicationTuple row, List<Product> changed, List<long> deleted, CancellationToken cancellationToken)
    {
        var values = new List<object?>(9);
        var complete = true;
        await foreach (var value in row)
        {
            if (value.Kind == TupleDataKind.UnchangedToastedValue)
            {
                complete = false; // a large unchanged column was not sent: evict instead of refreshing
                values.Add(null);
                continue;
            }
            values.Add(value.IsDBNull ? null : await value.Get<string>(cancellationToken));
        }
        var id = long.Parse((string)values[0]!, System.Globalization.CultureInfo.InvariantCulture);
        if (!complete)
        {
            deleted.Add(id);
            return;
        }
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        changed.Add(new Product(id, (string)values[1]!, (string)values[2]!, (string)values[3]!, (string)values[4]!,
            decimal.Parse((string)values[5]!, inv), int.Parse((string)values[6]!, inv), int.Parse((string)values[7]!, inv),
            DateTimeOffset.Parse((string)values[8]!, inv)));
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

    private async Task<bool> SlotIsActiveAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select active from pg_replication_slots where slot_name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = SlotName });
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }

    private async Task<PgOutputReplicationSlot> EnsureSlotAsync(CancellationToken cancellationToken)
    {
        await using (var command = dataSource.CreateCommand("select 1 from pg_replication_slots where slot_name = $1"))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = SlotName });
            if (await command.ExecuteScalarAsync(cancellationToken) is not null)
            {
                return new PgOutputReplicationSlot(SlotName);
            }
        }
        await using var connection = new LogicalReplicationConnection(ReplicationConnectionString);
        await connection.Open(cancellationToken);
        try
        {
            return await connection.CreatePgOutputReplicationSlot(SlotName, slotSnapshotInitMode: LogicalSlotSnapshotInitMode.NoExport, cancellationToken: cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DuplicateObject)
        {
            return new PgOutputReplicationSlot(SlotName); // another replica created it first
        }
    }
}
