using System.Globalization;
using ShopReference.Valkey;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.CartSession.Carts;

/// <summary>The result of a cart change.</summary>
public enum CartChange
{
    Applied,
    OverMaxQuantity,
    OverMaxLines,
    UnknownSession,
}

/// <summary>What a change did, and the cart as it is after it (read in the same atomic step).</summary>
public sealed record CartUpdate(CartChange Change, int Quantity, IReadOnlyDictionary<long, int> Lines);

/// <summary>Limits of one cart (<c>Cart:*</c>), checked at start; <see cref="CartStore"/> checks them again when built by hand.</summary>
public sealed record CartLimits
{
    [System.ComponentModel.DataAnnotations.Range(1, 10_000)]
    public int MaxQuantityPerLine { get; init; } = 99;

    [System.ComponentModel.DataAnnotations.Range(1, 10_000)]
    public int MaxLines { get; init; } = 50;

    /// <summary>Sliding expiry: every operation on the session renews it.</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:00:00.1", "365.00:00:00")]
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(30);
}

/// <summary>
/// A shopping cart per session in one Valkey hash, changed field by field in one atomic Lua step per operation, so
/// concurrent requests from any number of instances never lose an update (unlike a session blob written back whole).
/// Session ids are opaque tokens: only their SHA-256 is ever part of a key.
/// </summary>
public sealed class CartStore
{
    private readonly IDatabase _database;
    private readonly ValkeyScript _script = ValkeyScript.Load<CartStore>("cart");

    public CartStore(IConnectionMultiplexer multiplexer, CartLimits limits)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxQuantityPerLine, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxLines, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.IdleTimeout, TimeSpan.FromMilliseconds(100));
        _database = multiplexer.GetDatabase();
        Limits = limits;
    }

    public CartLimits Limits { get; }

    /// <summary><c>cart:session:{sha256}</c>: the hash is a hash tag, so the session's checkout keys share its slot.</summary>
    public static string Key(string sessionId) => KeySchema.TaggedKey("cart", "session", SessionHash(sessionId));

    /// <summary>The session's stable, non-secret name: the SHA-256 of its id (used in keys and in orders).</summary>
    public static string SessionHash(string sessionId) => KeySchema.Sha256Hex(sessionId);

    /// <summary>Starts a session (its cart is empty) and returns its id, 256 random bits.</summary>
    public async Task<string> CreateSessionAsync()
    {
        var sessionId = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        await RunAsync(sessionId, "create");
        return sessionId;
    }

    /// <summary>The lines (product id to quantity), or null when the session does not exist.</summary>
    public async Task<IReadOnlyDictionary<long, int>?> GetAsync(string sessionId)
    {
        var result = await RunAsync(sessionId, "get");
        return result.Resp2Type == ResultType.Integer ? null : Lines((RedisResult[])result!, skip: 0); // -3: unknown session
    }

    /// <summary>Adds <paramref name="delta"/> to a line atomically (HINCRBY semantics within the limits).</summary>
    public Task<CartUpdate> AddAsync(string sessionId, long productId, int delta) => ChangeAsync(sessionId, "add", productId, delta);

    /// <summary>Sets a line's quantity; 0 removes it.</summary>
    public Task<CartUpdate> SetAsync(string sessionId, long productId, int quantity) => ChangeAsync(sessionId, "set", productId, quantity);

    /// <summary>Removes a line (Quantity 1 when it was there, 0 when not).</summary>
    public Task<CartUpdate> RemoveAsync(string sessionId, long productId) => ChangeAsync(sessionId, "remove", productId, 0);

    private async Task<CartUpdate> ChangeAsync(string sessionId, string op, long productId, int amount)
    {
        var result = await RunAsync(sessionId, op, productId.ToString(CultureInfo.InvariantCulture),
            amount.ToString(CultureInfo.InvariantCulture), Limits.MaxQuantityPerLine.ToString(CultureInfo.InvariantCulture),
            Limits.MaxLines.ToString(CultureInfo.InvariantCulture));
        if (result.Resp2Type == ResultType.Integer)
        {
            return new CartUpdate(CartChange.UnknownSession, 0, new Dictionary<long, int>()); // -3
        }
        var flat = (RedisResult[])result!;
        var lines = Lines(flat, skip: 1);
        return (long)flat[0] switch
        {
            -1 => new CartUpdate(CartChange.OverMaxQuantity, 0, lines),
            -2 => new CartUpdate(CartChange.OverMaxLines, 0, lines),
            var code => new CartUpdate(CartChange.Applied, (int)code, lines),
        };
    }

    private static Dictionary<long, int> Lines(RedisResult[] flat, int skip)
    {
        var lines = new Dictionary<long, int>((flat.Length - skip) / 2);
        for (var i = skip; i < flat.Length; i += 2)
        {
            lines[long.Parse(((string)flat[i]!)[2..], CultureInfo.InvariantCulture)] = (int)flat[i + 1];
        }
        return lines;
    }

    private Task<RedisResult> RunAsync(string sessionId, string op, params string[] arguments)
    {
        RedisValue[] values = [op, (long)Limits.IdleTimeout.TotalMilliseconds, .. arguments.Select(a => (RedisValue)a)];
        return _script.EvaluateAsync(_database, [Key(sessionId)], values);
    }
}
