using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using ShopReference.CartSession.Carts;
using ShopReference.CartSession.Orders;
using ShopReference.ServiceClients;

namespace ShopReference.CartSession.Apis;

/// <summary><c>POST /api/cart/checkout</c>: places the cart as an order, exactly once per Idempotency-Key.</summary>
public static class CheckoutApi
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";

    /// <summary>A key is 1 to 64 visible ASCII characters (a UUID fits); it is stored hashed in Valkey.</summary>
    public const int MaxIdempotencyKeyLength = 64;

    public static RouteGroupBuilder MapCheckoutApi(this RouteGroupBuilder api)
    {
        api.MapPost("checkout", CheckoutAsync).WithName("Checkout")
            .WithSummary("Places the cart as an order; the same Idempotency-Key always answers the same order.");
        return api;
    }

    public static async Task<Results<Ok<Order>, ProblemHttpResult, ValidationProblem>> CheckoutAsync(
        CheckoutRequest? body, HttpContext http, CheckoutService checkout)
    {
        var errors = new Dictionary<string, string[]>();
        var key = http.Request.Headers[IdempotencyKeyHeader].ToString();
        if (http.Request.Headers[IdempotencyKeyHeader].Count != 1 || key.Length is 0 or > MaxIdempotencyKeyLength || key.Any(c => c is < '!' or > '~'))
        {
            errors[IdempotencyKeyHeader] = [$"Exactly one {IdempotencyKeyHeader} header of 1 to {MaxIdempotencyKeyLength} visible ASCII characters is required."];
        }
        if (!IsEmail(body?.Email))
        {
            errors["email"] = ["A valid email address (at most 254 characters) is required."];
        }
        if (errors.Count > 0) return (Results<Ok<Order>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(errors);
        if (CartSessionCookie.Read(http) is not { } session)
        {
            return Problem(StatusCodes.Status409Conflict, "The cart is empty; there is nothing to check out.");
        }

        CheckoutResult result;
        try
        {
            result = await checkout.CheckoutAsync(session, key, body!, (await ClientContext.FromAsync(http))?.Visitor, http.RequestAborted);
        }
        catch (OrderOutcomeUnknownException)
        {
            http.Response.Headers.RetryAfter = "1";
            return Problem(StatusCodes.Status503ServiceUnavailable,
                "The outcome is unknown: the order may have been placed. Retry with the same Idempotency-Key: it answers the order if it was placed, and places it once if not.");
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException && !http.RequestAborted.IsCancellationRequested)
        {
            // Before the commit: the transaction was rolled back, so nothing was placed.
            throw new DependencyUnavailableException("The order store is unavailable; no order was placed. Retry with the same Idempotency-Key.",
                UnavailableDependencyHandler.PostgresRetryAfter, ex);
        }
        switch (result.Outcome)
        {
            case CheckoutOutcome.Placed:
                return TypedResults.Ok(result.Order!);
            case CheckoutOutcome.Replayed:
                http.Response.Headers[ReplayedHeader] = "true";
                return TypedResults.Ok(result.Order!);
            case CheckoutOutcome.KeyReusedWithAnotherBody:
                return Problem(StatusCodes.Status422UnprocessableEntity, "This Idempotency-Key was used with a different request body; use a new key for a new request.");
            case CheckoutOutcome.EmptyCart:
                return Problem(StatusCodes.Status409Conflict, "The cart is empty; there is nothing to check out.");
            case CheckoutOutcome.ProductGone:
                return Problem(StatusCodes.Status409Conflict, $"Product {result.ProductId} is no longer sold; remove it from the cart and check out again.");
            case CheckoutOutcome.StillInProgress:
                http.Response.Headers.RetryAfter = "1";
                return Problem(StatusCodes.Status409Conflict, "A checkout with this Idempotency-Key is still running; retry with the same key.");
            default:
                throw new DependencyUnavailableException("The catalog cannot confirm prices right now; no order was placed. Retry with the same Idempotency-Key.",
                    CatalogClient.RetryAfter);
        }
    }

    private static ProblemHttpResult Problem(int status, string detail) => TypedResults.Problem(detail, statusCode: status);

    private static bool IsEmail(string? email)
    {
        email = email?.Trim();
        var at = email?.IndexOf('@') ?? -1;
        return email is { Length: <= 254 } && at > 0 && at == email.LastIndexOf('@') && at < email.Length - 1 &&
            !email.Any(c => char.IsWhiteSpace(c) || char.IsControl(c));
    }
}
