using System.Diagnostics.Metrics;
using ShopReference.CartSession.Orders;

namespace ShopReference.CartSession.Carts;

/// <summary>
/// The <c>ShopReference.CartSession</c> meter: sessions started, cart operations by kind and outcome, checkouts by
/// outcome, and idempotent replays (a retry answered with the order placed before).
/// </summary>
public sealed class CartSessionMetrics
{
    public const string MeterName = "ShopReference.CartSession";
    private readonly Counter<long> _sessions;
    private readonly Counter<long> _operations;
    private readonly Counter<long> _checkouts;
    private readonly Counter<long> _replays;

    public CartSessionMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _sessions = meter.CreateCounter<long>("shopreference.cart.sessions.created", "{session}", "Sessions started (a first write, or a write on an unknown or expired id).");
        _operations = meter.CreateCounter<long>("shopreference.cart.operations", "{operation}", "Cart changes, by operation and outcome.");
        _checkouts = meter.CreateCounter<long>("shopreference.cart.checkouts", "{checkout}", "Checkouts, by outcome (placed, replayed, refused ...).");
        _replays = meter.CreateCounter<long>("shopreference.cart.checkout.replays", "{checkout}", "Retries answered with the order an earlier request placed.");
    }

    public void SessionStarted() => _sessions.Add(1);

    public void Operation(string operation, string outcome) =>
        _operations.Add(1, new("operation", operation), new("outcome", outcome));

    public void Checkout(CheckoutOutcome outcome)
    {
        _checkouts.Add(1, new KeyValuePair<string, object?>("outcome", outcome.ToString()));
        if (outcome == CheckoutOutcome.Replayed)
        {
            _replays.Add(1);
        }
    }
}
