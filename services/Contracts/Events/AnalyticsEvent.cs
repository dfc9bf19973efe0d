using System.Globalization;
using System.Text;
using ShopReference.Valkey;
using StackExchange.Redis;

namespace ShopReference.Contracts.Events;

/// <summary>The event types the pipeline knows; anything else is refused (API) or dead-lettered (stream).</summary>
public static class EventTypes
{
    public const string ProductViewed = "product.viewed";
    public const string CartItemAdded = "cart.item_added";
    public const string OrderPlaced = "order.placed";

    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal) { ProductViewed, CartItemAdded, OrderPlaced };
}

/// <param name="Id">The publisher's id for the event; a second event with the same id is a duplicate and counts once.</param>
/// <param name="Timestamp">When it happened (UTC); it decides the hour, day and minute buckets.</param>
/// <param name="VisitorId">An opaque visitor id for unique-visitor counts (a hash, never a raw cookie or address).</param>
/// <param name="ProductId">The product, for product.viewed and cart.item_added.</param>
/// <param name="Quantity">Items added, for cart.item_added.</param>
/// <param name="Lines">Product and quantity per line, for order.placed.</param>
public sealed record AnalyticsEvent(
    string Id, string Type, DateTimeOffset Timestamp, string? VisitorId,
    long? ProductId = null, int? Quantity = null, IReadOnlyList<(long ProductId, int Quantity)>? Lines = null)
{
    /// <summary>The stream entry's fields. Flat strings, so the apply script reads them without decoding JSON.</summary>
    public NameValueEntry[] ToFields()
    {
        var fields = new List<NameValueEntry>(7)
        {
            new("id", Id),
            new("type", Type),
            new("ts", Timestamp.ToUnixTimeMilliseconds()),
        };
        if (VisitorId is not null) fields.Add(new("visitor", VisitorId));
        if (ProductId is not null) fields.Add(new("product", ProductId.Value));
        if (Quantity is not null) fields.Add(new("qty", Quantity.Value));
        if (Lines is not null) fields.Add(new("lines", string.Join(',', Lines.Select(l => $"{l.ProductId}:{l.Quantity}"))));
        return [.. fields];
    }

    /// <summary>Reads an entry back; null when a field is missing or malformed (the entry goes to the dead letters).</summary>
    public static AnalyticsEvent? FromFields(NameValueEntry[] fields, out string? problem)
    {
        string? Field(string name) => fields.FirstOrDefault(f => f.Name == name).Value is { IsNull: false } v ? (string?)v : null;
        problem = null;
        if (Field("id") is not { } id || Field("type") is not { } type ||
            !long.TryParse(Field("ts"), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var ts) || ts is < 0 or > 253402300799999)
        {
            problem = "id, type and ts (unix milliseconds) are required";
            return null;
        }
        long? product = long.TryParse(Field("product"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : null;
        int? quantity = int.TryParse(Field("qty"), NumberStyles.None, CultureInfo.InvariantCulture, out var q) ? q : null;
        List<(long, int)>? lines = null;
        if (Field("lines") is { } text)
        {
            lines = [];
            foreach (var part in text.Split(','))
            {
                var pair = part.Split(':');
                if (pair.Length != 2 || !long.TryParse(pair[0], NumberStyles.None, CultureInfo.InvariantCulture, out var lp) ||
                    !int.TryParse(pair[1], NumberStyles.None, CultureInfo.InvariantCulture, out var lq))
                {
                    problem = "lines must be productId:quantity pairs";
                    return null;
                }
                lines.Add((lp, lq));
            }
        }
        return new AnalyticsEvent(id, type, DateTimeOffset.FromUnixTimeMilliseconds(ts), Field("visitor"), product, quantity, lines);
    }
}

/// <summary>
/// What makes an event valid: the same rules for the API (a 400 naming each problem) and for the consumer (the entry is
/// dead-lettered with the reason). Bounds keep one event small and its keys bounded.
/// </summary>
public static class EventRules
{
    public const int MaxIdLength = 64;
    public const int MaxLines = 50;
    public const int MaxQuantity = 1_000;

    /// <summary>An event older than this is refused: its hour may already be rolled up and its dedupe set gone.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromHours(24);

    /// <summary>Clock skew allowed into the future.</summary>
    public static readonly TimeSpan MaxFutureSkew = TimeSpan.FromMinutes(5);

    /// <summary>Problems by field; empty when the event is valid at <paramref name="now"/>.</summary>
    public static Dictionary<string, string[]> Validate(AnalyticsEvent e, DateTimeOffset now)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (!IsToken(e.Id)) errors["id"] = [$"1 to {MaxIdLength} characters: letters, digits, '-', '_', '.', ':'."];
        if (!EventTypes.All.Contains(e.Type)) errors["type"] = [$"One of {string.Join(", ", EventTypes.All)}."];
        if (e.Timestamp < now - MaxAge) errors["timestamp"] = [$"Older than {MaxAge.TotalHours:0} hours."];
        if (e.Timestamp > now + MaxFutureSkew) errors["timestamp"] = [$"More than {MaxFutureSkew.TotalMinutes:0} minutes in the future."];
        if (e.VisitorId is not null && !IsToken(e.VisitorId)) errors["visitorId"] = [$"1 to {MaxIdLength} characters: letters, digits, '-', '_', '.', ':'."];
        // A view counts toward most-viewed and trending only as a visitor's: one without a visitor could be anyone's,
        // so it would let whoever can reach the stream or the analytics service steer the boards.
        if (e.Type == EventTypes.ProductViewed && e.VisitorId is null) errors["visitorId"] = ["A view names its visitor (the gateway's client context)."];
        switch (e.Type)
        {
            case EventTypes.ProductViewed or EventTypes.CartItemAdded when e.ProductId is not > 0:
                errors["productId"] = ["A positive product id is required."];
                break;
            case EventTypes.OrderPlaced when e.Lines is not { Count: > 0 and <= MaxLines } || e.Lines.Any(l => l.ProductId <= 0 || l.Quantity is < 1 or > MaxQuantity):
                errors["lines"] = [$"1 to {MaxLines} lines, each a positive product id and a quantity of 1 to {MaxQuantity}."];
                break;
        }
        if (e.Type == EventTypes.CartItemAdded && e.Quantity is not (>= 1 and <= MaxQuantity))
        {
            errors["quantity"] = [$"1 to {MaxQuantity}."];
        }
        return errors;
    }

    private static bool IsToken(string? value) =>
        value is { Length: > 0 and <= MaxIdLength } && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');

    /// <summary>An id for a new event: 128 random bits, hex.</summary>
    public static string NewId() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    /// <summary>The problems as one line, for a dead letter's reason.</summary>
    public static string Describe(Dictionary<string, string[]> errors) =>
        new StringBuilder().AppendJoin("; ", errors.Select(e => $"{e.Key}: {string.Join(' ', e.Value)}")).ToString();
}
