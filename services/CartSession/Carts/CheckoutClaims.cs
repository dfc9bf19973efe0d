using System.Globalization;
using ShopReference.Valkey;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.CartSession.Carts;

/// <summary>What a claim attempt found: ours to work on, someone else's still running, or an order already placed.</summary>
public enum ClaimState
{
    Claimed,
    Pending,
    Done,
}

/// <param name="Fingerprint">The request fingerprint stored with the claim (compare it with the caller's).</param>
/// <param name="OrderId">The order placed under the key, when <see cref="State"/> is <see cref="ClaimState.Done"/>.</param>
public sealed record Claim(ClaimState State, string? Fingerprint, long? OrderId);

/// <summary>
/// The Valkey half of idempotent checkout: a <c>SET NX</c> claim per (session, Idempotency-Key) that makes concurrent
/// retries wait for the first instead of placing orders of their own, and one atomic step that, once the order is
/// committed, subtracts the ordered quantities from the cart and records the order id under the key. It is not the
/// only guard: the orders table has a unique constraint on the same pair, for a claim lost to expiry or a flush.
/// </summary>
public sealed class CheckoutClaims(IConnectionMultiplexer multiplexer, CartLimits limits)
{
    /// <summary>How long a claim protects a running checkout; longer than a checkout's own deadline.</summary>
    public static readonly TimeSpan PendingTtl = TimeSpan.FromSeconds(30);

    /// <summary>How long a finished key answers from Valkey; after that PostgreSQL still does.</summary>
    public static readonly TimeSpan DoneTtl = TimeSpan.FromHours(24);

    private readonly IDatabase _database = multiplexer.GetDatabase();
    private readonly ValkeyScript _script = ValkeyScript.Load<CheckoutClaims>("checkout");

    /// <summary><c>cart:checkout:{sha256(session)}:{sha256(idempotency key)}</c>, in the session's slot.</summary>
    public static string Key(string sessionId, string idempotencyKey) =>
        KeySchema.TaggedKey("cart", "checkout", CartStore.SessionHash(sessionId), KeySchema.Sha256Hex(idempotencyKey));

    /// <summary><c>cart:settled:{sha256(session)}</c>: the orders already taken out of the session's cart, in its slot.</summary>
    public static string SettledKey(string sessionId) => KeySchema.TaggedKey("cart", "settled", CartStore.SessionHash(sessionId));

    public async Task<Claim> ClaimAsync(string sessionId, string idempotencyKey, string fingerprint, string token)
    {
        var result = (RedisResult[])(await RunAsync(sessionId, idempotencyKey, "claim", fingerprint, token, (long)PendingTtl.TotalMilliseconds))!;
        return (string?)result[0] switch
        {
            "claimed" => new Claim(ClaimState.Claimed, fingerprint, null),
            "done" => new Claim(ClaimState.Done, (string?)result[1], long.Parse((string)result[2]!, CultureInfo.InvariantCulture)),
            _ => new Claim(ClaimState.Pending, (string?)result[1], null),
        };
    }

    /// <summary>
    /// After the order is committed: take its lines out of the cart — once per order, however often this runs — and
    /// answer the key with the order from now on. Returns true when this call took them out.
    /// </summary>
    public async Task<bool> CompleteAsync(string sessionId, string idempotencyKey, string fingerprint, long orderId, IEnumerable<(long ProductId, int Quantity)> lines) =>
        (long)await RunAsync(sessionId, idempotencyKey,
        [
            "complete", fingerprint, orderId, (long)DoneTtl.TotalMilliseconds, (long)limits.IdleTimeout.TotalMilliseconds,
            .. lines.SelectMany(l => new RedisValue[] { l.ProductId, l.Quantity }),
        ]) == 1;

    /// <summary>Gives a claim back after a failure, so a retry can run at once; only our own pending claim is deleted.</summary>
    public async Task<bool> ReleaseAsync(string sessionId, string idempotencyKey, string fingerprint, string token) =>
        (long)await RunAsync(sessionId, idempotencyKey, "release", fingerprint, token) == 1;

    private Task<RedisResult> RunAsync(string sessionId, string idempotencyKey, params RedisValue[] values) =>
        _script.EvaluateAsync(_database, [CartStore.Key(sessionId), Key(sessionId, idempotencyKey), SettledKey(sessionId)], values);
}
