using Microsoft.AspNetCore.OutputCaching;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using ShopReference.Catalog.Apis;
using ShopReference.Catalog.Caching;
using StackExchange.Redis;

namespace ShopReference.Catalog.ChangeFeed;

/// <summary>
/// The change feed's replication slot and what it means for the cache. A slot that had to be created — the first time,
/// or because it was dropped, lost in a failover or restore (slots are not copied by backups or to replicas), or
/// invalidated by <c>max_slot_wal_keep_size</c> — starts at "now": changes made before it were never seen by the
/// feed, so every cached product and page is dropped once the new slot exists, and loads come from PostgreSQL again.
/// </summary>
public sealed class ReplicationSlot(
    NpgsqlDataSource dataSource, IConnectionMultiplexer valkey, IOutputCacheStore outputCache, ProductCache products, CatalogMetrics metrics, IConfiguration configuration,
    ILogger<ReplicationSlot> logger)
{
    public const string DefaultName = "catalog_cache";

    /// <summary>The slot's name (<c>Catalog:ChangeFeed:Slot</c>); slot names are server-wide, so two catalogs on one server need two.</summary>
    public string Name { get; } = configuration["Catalog:ChangeFeed:Slot"] ?? DefaultName;

    /// <summary>The slot, created (and the cache reset) when missing or unusable.</summary>
    public async Task<PgOutputReplicationSlot> EnsureAsync(string replicationConnectionString, CancellationToken cancellationToken)
    {
        var state = await StateAsync(cancellationToken);
        if (state is "lost")
        {
            logger.LogWarning("Replication slot {Slot} was invalidated (it held more WAL than max_slot_wal_keep_size); recreating it.", Name);
            await DropAsync(cancellationToken);
            state = null;
        }
        if (state is not null)
        {
            return new PgOutputReplicationSlot(Name);
        }

        await using var connection = new LogicalReplicationConnection(replicationConnectionString);
        await connection.Open(cancellationToken);
        PgOutputReplicationSlot slot;
        try
        {
            slot = await connection.CreatePgOutputReplicationSlot(Name, slotSnapshotInitMode: LogicalSlotSnapshotInitMode.NoExport, cancellationToken: cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DuplicateObject)
        {
            return new PgOutputReplicationSlot(Name); // another replica created it first, and resets the cache
        }
        try
        {
            await ResetCacheAsync(cancellationToken);
        }
        catch (Exception ex)
        {
            // A slot left in place would be found by the next attempt and the reset it owes never made: the changes
            // before it would stay cached. Without the slot, the next attempt creates it again and resets then.
            // The creating connection released the slot when the creation ended, so it is not active and can go.
            logger.LogWarning("The cache reset after creating slot {Slot} failed ({Message}); dropping the slot so the next attempt resets.", Name, ex.Message);
            try
            {
                await DropAsync(CancellationToken.None);
            }
            catch (Exception dropFailed) when (dropFailed is NpgsqlException or TimeoutException)
            {
                logger.LogError("Slot {Slot} could not be dropped ({Message}): drop it by hand, or changes made before it stay cached.", Name, dropFailed.Message);
            }
            throw;
        }
        return slot;
    }

    /// <summary>Drops the slot when it can no longer stream (the next <see cref="EnsureAsync"/> recreates it).</summary>
    public async Task DropAsync(CancellationToken cancellationToken)
    {
        await using var drop = dataSource.CreateCommand("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active");
        drop.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Name });
        await drop.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Whether a reader streams from the slot now (then this replica stands by).</summary>
    public async Task<bool> IsActiveAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select active from pg_replication_slots where slot_name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Name });
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }

    /// <summary>WAL the server keeps for the slot: from its confirmed position to the server's current position.</summary>
    public async Task<long?> RetainedBytesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint from pg_replication_slots where slot_name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Name });
        return await command.ExecuteScalarAsync(cancellationToken) is long bytes ? bytes : null;
    }

    // null: no slot; else its wal_status ("reserved", "extended", "unreserved", "lost").
    private async Task<string?> StateAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select coalesce(wal_status, 'reserved') from pg_replication_slots where slot_name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Name });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    // Every product entry and every listing page: all of them may predate changes the feed never saw.
    private async Task ResetCacheAsync(CancellationToken cancellationToken)
    {
        var database = valkey.GetDatabase();
        var removed = 0L;
        foreach (var server in valkey.GetServers().Where(s => !s.IsReplica && s.IsConnected))
        {
            var batch = new List<RedisKey>(500);
            await foreach (var key in server.KeysAsync(pattern: ProductCache.KeyPattern, pageSize: 1000).WithCancellation(cancellationToken))
            {
                // Locks and fences stay: a load in flight keeps its lease, and its fence still orders fills.
                if (((string)key!).EndsWith(":lock", StringComparison.Ordinal) || ((string)key!).EndsWith(":fence", StringComparison.Ordinal))
                {
                    continue;
                }
                batch.Add(key);
                if (batch.Count == batch.Capacity)
                {
                    removed += await DeleteAsync(database, batch);
                    batch.Clear();
                }
            }
            removed += await DeleteAsync(database, batch);
        }
        await products.FlushNearCachesAsync(); // the deletions above announce nothing one by one
        await Strict(outputCache).EvictByTagAsync(CatalogApi.ListTag, cancellationToken);
        metrics.SlotRecreated();
        logger.LogWarning("Replication slot {Slot} created: changes before it were not seen, so {Count} cached products and every page were dropped.", Name, removed);
    }

    // One DEL per key, pipelined: a DEL of several keys is refused on a cluster when they live in different slots
    // (CROSSSLOT), and every product has a slot of its own (its id is its hash tag).
    private static async Task<long> DeleteAsync(IDatabase database, List<RedisKey> keys) =>
        (await Task.WhenAll(keys.Select(key => database.KeyDeleteAsync(key)))).Count(deleted => deleted);

    /// <summary>The output-cache store without its outage degrade: the feed must know when an eviction failed.</summary>
    public static IOutputCacheStore Strict(IOutputCacheStore store) => store is DegradingOutputCacheStore degrading ? degrading.Inner : store;
}
