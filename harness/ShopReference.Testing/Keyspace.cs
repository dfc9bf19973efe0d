using StackExchange.Redis;

namespace ShopReference.Testing;

/// <summary>Keyspace chores for tests and benchmarks that share one server but own a family of fixed keys.</summary>
public static class Keyspace
{
    /// <summary>Deletes every key matching <paramref name="pattern"/> (SCAN, never KEYS); returns how many.</summary>
    public static async Task<int> DeleteAsync(IConnectionMultiplexer connection, string pattern)
    {
        var database = connection.GetDatabase();
        var deleted = 0;
        foreach (var server in connection.GetServers().Where(s => !s.IsReplica))
        {
            var batch = new List<RedisKey>(1000);
            await foreach (var key in server.KeysAsync(pattern: pattern, pageSize: 1000))
            {
                batch.Add(key);
                if (batch.Count == 1000)
                {
                    deleted += await DeleteEachAsync(database, batch);
                    batch.Clear();
                }
            }
            deleted += await DeleteEachAsync(database, batch);
        }
        return deleted;
    }

    /// <summary>One pipelined DEL per key: on a cluster one node holds many slots, and a multi-key DEL must stay in one.</summary>
    private static async Task<int> DeleteEachAsync(IDatabase database, List<RedisKey> keys) =>
        (await Task.WhenAll(keys.Select(key => database.KeyDeleteAsync(key)))).Count(deleted => deleted);
}
