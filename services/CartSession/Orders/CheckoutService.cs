using ShopReference.ServiceClients;
using System.Security.Cryptography;
using System.Text;
using ShopReference.CartSession.Carts;
using ShopReference.Valkey;

namespace ShopReference.CartSession.Orders;

/// <summary>How a checkout ended; the API maps each to a status code.</summary>
public enum CheckoutOutcome
{
    Placed,
    Replayed,
    KeyReusedWithAnotherBody,
    EmptyCart,
    ProductGone,
    CatalogUnavailable,
    StillInProgress,
}

public sealed record CheckoutResult(CheckoutOutcome Outcome, Order? Order = null, long? ProductId = null);

/// <summary>
/// Idempotent checkout. The first request under a (session, Idempotency-Key) claims the key in Valkey, snapshots the
/// prices from the catalog (fresh, not from the lookup cache), writes the order in one PostgreSQL transaction, then in
/// one Valkey step subtracts the ordered lines from the cart and records the order under the key. Concurrent retries
/// wait for that and answer the same order; later retries read it back. Neither store alone is trusted: the unique
/// constraint in PostgreSQL holds even when a claim was lost, and an order found there is answered, never doubled.
/// </summary>
public sealed class CheckoutService(CartStore carts, CheckoutClaims claims, OrdersDatabase orders, CatalogClient catalog,
    CartSessionMetrics metrics, OutboxRelay outbox, ILogger<CheckoutService> logger)
{
    /// <summary>How long a retry waits for a concurrent request with the same key before answering 409.</summary>
    public static readonly TimeSpan WaitForConcurrent = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long placing an order may take, well inside the claim's lease (<see cref="CheckoutClaims.PendingTtl"/>): a
    /// checkout never still works on a key whose claim another request may already have taken over.
    /// </summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <param name="visitor">The gateway's visitor id for the client (unique-visitor counts), or null.</param>
    public async Task<CheckoutResult> CheckoutAsync(string sessionId, string idempotencyKey, CheckoutRequest request, string? visitor, CancellationToken cancellationToken)
    {
        var fingerprint = Fingerprint(request);
        var deadline = DateTime.UtcNow + WaitForConcurrent;
        var pause = TimeSpan.FromMilliseconds(20);
        while (true)
        {
            var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var claim = await claims.ClaimAsync(sessionId, idempotencyKey, fingerprint, token);
            if (claim.State != ClaimState.Claimed && claim.Fingerprint != fingerprint)
            {
                return Done(new CheckoutResult(CheckoutOutcome.KeyReusedWithAnotherBody));
            }
            if (claim.State == ClaimState.Done && await orders.LoadAsync(claim.OrderId!.Value, cancellationToken) is { } placed)
            {
                return Done(new CheckoutResult(CheckoutOutcome.Replayed, placed.Order));
            }
            if (claim.State == ClaimState.Claimed)
            {
                try
                {
                    using var placing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    placing.CancelAfter(Deadline);
                    var result = await PlaceAsync(sessionId, idempotencyKey, fingerprint, request, visitor, placing.Token);
                    if (result.Outcome is not (CheckoutOutcome.Placed or CheckoutOutcome.Replayed))
                    {
                        await claims.ReleaseAsync(sessionId, idempotencyKey, fingerprint, token);
                    }
                    return Done(result);
                }
                catch
                {
                    await ReleaseQuietlyAsync(sessionId, idempotencyKey, fingerprint, token);
                    throw;
                }
            }
            // Another request holds the claim (or a recorded order has vanished from PostgreSQL's answer): wait and look again.
            if (DateTime.UtcNow + pause > deadline)
            {
                return Done(new CheckoutResult(CheckoutOutcome.StillInProgress));
            }
            await Task.Delay(pause, cancellationToken);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromMilliseconds(200).Ticks));
        }
    }

    /// <summary>The request body's fingerprint: SHA-256 over its normalised fields.</summary>
    public static string Fingerprint(CheckoutRequest request) =>
        KeySchema.Sha256Hex("email=" + (request.Email ?? "").Trim().ToLowerInvariant());

    private async Task<CheckoutResult> PlaceAsync(string sessionId, string idempotencyKey, string fingerprint, CheckoutRequest request, string? visitor, CancellationToken cancellationToken)
    {
        var sessionHash = CartStore.SessionHash(sessionId);

        // An order may exist although the claim does not say so (claim expired or lost after the commit): answer it.
        if (await orders.FindAsync(sessionHash, idempotencyKey, cancellationToken) is { } existing)
        {
            return await FinishExistingAsync(sessionId, idempotencyKey, fingerprint, existing);
        }

        var cart = await carts.GetAsync(sessionId);
        if (cart is null || cart.Count == 0)
        {
            return new CheckoutResult(CheckoutOutcome.EmptyCart);
        }

        // The price snapshot: asked of the catalog now, in parallel; a price is never guessed or taken from a stale copy.
        var lookups = cart.OrderBy(l => l.Key).Select(async line => (Line: line, Product: await catalog.GetAsync(line.Key, cancellationToken, fresh: true))).ToList();
        try
        {
            await Task.WhenAll(lookups);
        }
        catch (DependencyUnavailableException ex)
        {
            logger.LogWarning(ex, "Checkout refused: the catalog cannot confirm prices.");
            return new CheckoutResult(CheckoutOutcome.CatalogUnavailable);
        }
        var lines = new List<OrderLine>(lookups.Count);
        foreach (var (line, product) in lookups.Select(l => l.Result))
        {
            if (product is null)
            {
                return new CheckoutResult(CheckoutOutcome.ProductGone, ProductId: line.Key);
            }
            lines.Add(new OrderLine(line.Key, product.Name, product.Price, line.Value));
        }

        var email = request.Email!.Trim();
        // The order, its lines and its order.placed event (the outbox) commit together, or none of them does.
        if (await orders.InsertAsync(sessionHash, idempotencyKey, fingerprint, email, lines, visitor, cancellationToken) is not { } orderId)
        {
            // The unique constraint caught a second placement: another request got there first, so answer its order.
            var winner = await orders.FindAsync(sessionHash, idempotencyKey, cancellationToken)
                ?? throw new InvalidOperationException("The order that won the unique constraint cannot be read.");
            return winner.Fingerprint == fingerprint
                ? new CheckoutResult(CheckoutOutcome.Replayed, winner.Order)
                : new CheckoutResult(CheckoutOutcome.KeyReusedWithAnotherBody);
        }
        outbox.Nudge(); // the event is durable already; the relay appends it to the stream now rather than at its next tick
        var order = (await orders.LoadAsync(orderId, cancellationToken))!.Value.Order;
        await SettleCartAsync(sessionId, idempotencyKey, fingerprint, order);
        return new CheckoutResult(CheckoutOutcome.Placed, order);
    }

    /// <summary>
    /// Takes the order's lines out of the cart, exactly once however often it runs: the cart remembers which orders
    /// it settled (<see cref="CheckoutClaims.CompleteAsync"/>), in the same atomic step that subtracts them.
    /// </summary>
    private async Task SettleCartAsync(string sessionId, string idempotencyKey, string fingerprint, Order order)
    {
        try
        {
            await claims.CompleteAsync(sessionId, idempotencyKey, fingerprint, order.Id, order.Lines.Select(l => (l.ProductId, l.Quantity)));
        }
        catch (Exception ex) when (ShopReference.Valkey.Resilience.ValkeyFailures.IsUnavailable(ex))
        {
            // The order is committed and is the truth, so it is answered. Its lines stay in the cart for now; a retry
            // with the same key finds the order and settles the cart then, once.
            logger.LogWarning(ex, "Order {OrderId} placed, but its lines could not be taken out of the cart yet.", order.Id);
        }
    }

    // The order was committed by an earlier attempt whose answer was lost (or whose claim expired): answer it, and
    // settle the cart if that attempt could not (a no-op when it did).
    private async Task<CheckoutResult> FinishExistingAsync(string sessionId, string idempotencyKey, string fingerprint, (Order Order, string Fingerprint) existing)
    {
        if (existing.Fingerprint != fingerprint)
        {
            return new CheckoutResult(CheckoutOutcome.KeyReusedWithAnotherBody);
        }
        await SettleCartAsync(sessionId, idempotencyKey, fingerprint, existing.Order);
        return new CheckoutResult(CheckoutOutcome.Replayed, existing.Order);
    }

    private async Task ReleaseQuietlyAsync(string sessionId, string idempotencyKey, string fingerprint, string token)
    {
        try
        {
            await claims.ReleaseAsync(sessionId, idempotencyKey, fingerprint, token);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            // The claim then expires by itself (CheckoutClaims.PendingTtl); a retry waits for that, then runs.
            logger.LogDebug(ex, "Could not release a checkout claim.");
        }
    }

    private CheckoutResult Done(CheckoutResult result)
    {
        metrics.Checkout(result.Outcome);
        return result;
    }
}
