using StackExchange.Redis;

namespace ShopReference.Valkey.Discovery;

/// <summary>
/// Where the replicas of a service can be reached, kept in Valkey: each replica announces its own address every
/// <see cref="Heartbeat"/> into a sorted set scored by the time it last did (<c>{service}:replicas</c>), and a reader
/// takes the addresses announced within <see cref="FreshFor"/>. A replica that dies stops announcing and drops out;
/// one that stops cleanly withdraws at once. The gateway uses it to spread requests over the replicas one by one,
/// where the orchestrator's proxy in front of them would only spread connections (docs/cluster.md).
/// </summary>
public sealed class ReplicaRegistry(IConnectionMultiplexer multiplexer, TimeProvider? time = null)
{
    public static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(2);

    /// <summary>Three missed heartbeats: long enough for a busy process, short enough that a dead one drops out soon.</summary>
    public static readonly TimeSpan FreshFor = TimeSpan.FromSeconds(6);

    /// <summary>Entries older than this are removed by the next announcement: the set stays as small as the replicas.</summary>
    private static readonly TimeSpan ForgetAfter = TimeSpan.FromMinutes(10);

    private readonly IDatabase _database = multiplexer.GetDatabase();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>The registry of a service, under its key prefix (its Valkey user may write only there).</summary>
    public static string Key(string servicePrefix) => $"{servicePrefix}:replicas";

    /// <summary>
    /// Three commands sent together, not a transaction: each is right on its own, and a transaction is cancelled
    /// whole when the client is still learning a cluster's slot map (which once stopped a service at start).
    /// </summary>
    public async Task AnnounceAsync(string key, string address)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        await Task.WhenAll(
            _database.SortedSetAddAsync(key, address, now),
            _database.SortedSetRemoveRangeByScoreAsync(key, double.NegativeInfinity, now - ForgetAfter.TotalMilliseconds),
            _database.KeyExpireAsync(key, ForgetAfter)).ConfigureAwait(false);
    }

    public Task WithdrawAsync(string key, string address) => _database.SortedSetRemoveAsync(key, address);

    /// <summary>The addresses announced within <see cref="FreshFor"/>, in a stable order.</summary>
    public async Task<IReadOnlyList<string>> ReadAsync(string key)
    {
        var since = _time.GetUtcNow().ToUnixTimeMilliseconds() - FreshFor.TotalMilliseconds;
        var addresses = await _database.SortedSetRangeByScoreAsync(key, since, double.PositiveInfinity).ConfigureAwait(false);
        return [.. addresses.Select(a => a.ToString()).Order(StringComparer.Ordinal)];
    }
}
