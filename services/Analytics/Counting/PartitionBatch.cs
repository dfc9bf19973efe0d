using StackExchange.Redis;

namespace ShopReference.Analytics.Counting;

/// <summary>
/// The arguments of one <c>apply_once.lua</c> call: the parts of a batch's events that fall in one partition. Each key
/// is sent once in KEYS (with its time to live) and the parts refer to it by index, so the script builds no key name.
/// </summary>
internal sealed class PartitionBatch(int partition)
{
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly List<RedisKey> _keys = [];
    private readonly List<RedisValue> _ttls = [];
    private readonly List<RedisValue> _parts = [];

    public int Partition { get; } = partition;

    /// <summary>For each part, in order, the index of its event in the batch (the script answers a flag per part).</summary>
    public List<int> Events { get; } = [];

    public RedisKey[] Keys => [.. _keys];
    public RedisValue[] Values => [.. _ttls, .. _parts];

    /// <summary>Adds one event's part: applied once per dedupe set and member, with its operations.</summary>
    public void Add(int eventIndex, string dedupeSet, TimeSpan dedupeTtl, string member, IReadOnlyList<CountOperation> operations) =>
        Add(eventIndex, Key(dedupeSet, dedupeTtl), member, operations);

    /// <summary>Adds a part whose operations may be repeated without changing the result (a <c>PFADD</c>): no dedupe mark.</summary>
    public void AddIdempotent(int eventIndex, IReadOnlyList<CountOperation> operations) => Add(eventIndex, 0, "", operations);

    private void Add(int eventIndex, int dedupeSet, string member, IReadOnlyList<CountOperation> operations)
    {
        Events.Add(eventIndex);
        _parts.Add(dedupeSet);
        _parts.Add(member);
        _parts.Add(operations.Count);
        foreach (var operation in operations)
        {
            _parts.Add(operation.Code);
            _parts.Add(Key(operation.Key, operation.TimeToLive));
            _parts.Add(operation.Member);
            _parts.Add(operation.Amount);
        }
    }

    private int Key(string key, TimeSpan timeToLive)
    {
        if (!_index.TryGetValue(key, out var index))
        {
            _keys.Add(key);
            _ttls.Add((long)timeToLive.TotalSeconds);
            _index[key] = index = _keys.Count; // Lua counts from 1
        }
        return index;
    }
}

/// <summary>One change of a count: <c>z</c> ZINCRBY, <c>n</c> INCRBY, <c>p</c> PFADD, <c>h</c> HINCRBY (see apply_once.lua).</summary>
internal readonly record struct CountOperation(string Code, string Key, TimeSpan TimeToLive, RedisValue Member, long Amount)
{
    public static CountOperation SortedSetIncrement(string key, TimeSpan ttl, long member, long by) => new("z", key, ttl, member, by);
    public static CountOperation Increment(string key, TimeSpan ttl, long by) => new("n", key, ttl, "", by);
    public static CountOperation HyperLogLogAdd(string key, TimeSpan ttl, string member) => new("p", key, ttl, member, 0);
    public static CountOperation HashIncrement(string key, string field, long by) => new("h", key, TimeSpan.Zero, field, by);
}
