using Microsoft.AspNetCore.Http.HttpResults;
using ShopReference.CartSession.Carts;
using ShopReference.Valkey.Carts;
using StackExchange.Redis;

namespace ShopReference.CartSession.Apis;

public sealed record CartLine(long ProductId, int Quantity);
public sealed record CartView(IReadOnlyList<CartLine> Lines);
public sealed record AddItem(long? ProductId, int? Quantity);
public sealed record SetQuantity(int? Quantity);

public static class CartApi
{
    public static IEndpointRouteBuilder MapCartApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/cart").WithTags("Cart");
        api.MapGet("", GetCart).WithName("GetCart").WithSummary("The session's cart; empty (and no session started) without a valid session cookie.");
        api.MapPost("items", AddItemAsync).WithName("AddCartItem").WithSummary("Adds a quantity to a line atomically: concurrent adds never lose one.");
        api.MapPut("items/{productId}", SetItemAsync).WithName("SetCartItem").WithSummary("Sets a line's quantity; 0 removes it.");
        api.MapDelete("items/{productId}", RemoveItemAsync).WithName("RemoveCartItem").WithSummary("Removes a line.");
        api.MapWiringEndpoint("", "cart");
        return app;
    }

    public static Task<Ok<CartView>> GetCart(HttpContext http, CartStore store) => Guard(async () =>
    {
        var lines = CartSessionCookie.Read(http) is { } id ? await store.GetAsync(id) : null;
        return TypedResults.Ok(View(lines));
    });

    public static Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> AddItemAsync(AddItem? body, HttpContext http, CartStore store) => Guard(async () =>
    {
        var errors = new Dictionary<string, string[]>();
        if (body?.ProductId is not > 0) errors["productId"] = ["A positive product id is required."];
        if (body?.Quantity is not { } quantity || quantity < 1 || quantity > store.Limits.MaxQuantityPerLine)
            errors["quantity"] = [$"1 to {store.Limits.MaxQuantityPerLine}."];
        if (errors.Count > 0) return (Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(errors);
        return await ChangeAsync(http, store, id => store.AddAsync(id, body!.ProductId!.Value, body.Quantity!.Value));
    });

    public static Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> SetItemAsync(string productId, SetQuantity? body, HttpContext http, CartStore store) => Guard(async () =>
    {
        var errors = new Dictionary<string, string[]>();
        if (!long.TryParse(productId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id <= 0)
            errors["productId"] = ["A positive product id is required."];
        if (body?.Quantity is not { } quantity || quantity < 0 || quantity > store.Limits.MaxQuantityPerLine)
            errors["quantity"] = [$"0 to {store.Limits.MaxQuantityPerLine}."];
        if (errors.Count > 0) return (Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(errors);
        return await ChangeAsync(http, store, session => store.SetAsync(session, id, body!.Quantity!.Value));
    });

    public static Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> RemoveItemAsync(string productId, HttpContext http, CartStore store) => Guard(async () =>
    {
        if (!long.TryParse(productId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id <= 0)
            return (Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productId"] = ["A positive product id is required."] });
        if (CartSessionCookie.Read(http) is { } session)
        {
            await store.RemoveAsync(session, id);
            return TypedResults.Ok(View(await store.GetAsync(session)));
        }
        return TypedResults.Ok(View(null));
    });

    // A change on an unknown session starts a fresh one (never adopting the client's id) and applies the change there.
    private static async Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> ChangeAsync(
        HttpContext http, CartStore store, Func<string, Task<(CartChange Change, int Quantity)>> change)
    {
        var session = CartSessionCookie.Read(http) ?? await CartSessionCookie.StartAsync(http, store);
        var (result, _) = await change(session);
        if (result == CartChange.UnknownSession)
        {
            session = await CartSessionCookie.StartAsync(http, store);
            (result, _) = await change(session);
        }
        return result switch
        {
            CartChange.OverMaxQuantity => TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["quantity"] = [$"A line holds at most {store.Limits.MaxQuantityPerLine}."] }),
            CartChange.OverMaxLines => TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productId"] = [$"A cart holds at most {store.Limits.MaxLines} lines."] }),
            _ => TypedResults.Ok(View(await store.GetAsync(session))),
        };
    }

    private static CartView View(IReadOnlyDictionary<long, int>? lines) =>
        new(lines is null ? [] : [.. lines.OrderBy(l => l.Key).Select(l => new CartLine(l.Key, l.Value))]);

    // Valkey unreachable: 503 with Retry-After, and nothing was half-written (each change is one atomic script).
    private static async Task<TResult> Guard<TResult>(Func<Task<TResult>> handler) where TResult : IResult
    {
        try
        {
            return await handler();
        }
        catch (Exception ex) when (ex is RedisConnectionException or RedisTimeoutException)
        {
            throw new CartUnavailableException(ex);
        }
    }
}

/// <summary>Raised when the cart store cannot answer; mapped to 503 ProblemDetails with Retry-After.</summary>
public sealed class CartUnavailableException(Exception inner) : Exception("The cart store is unavailable.", inner);
