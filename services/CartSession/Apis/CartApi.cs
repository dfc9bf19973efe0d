using ShopReference.ServiceClients;
using Microsoft.AspNetCore.Http.HttpResults;
using ShopReference.CartSession.Carts;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

namespace ShopReference.CartSession.Apis;

/// <summary>A cart line; name and price are null when the catalog could not be asked (the cart still reads).</summary>
public sealed record CartLine(long ProductId, int Quantity, string? Name, decimal? Price);
public sealed record CartView(IReadOnlyList<CartLine> Lines);
public sealed record AddItem(long? ProductId, int? Quantity);
public sealed record SetQuantity(int? Quantity);

public static class CartApi
{
    public const int MaxBodyBytes = 2048;

    public static IEndpointRouteBuilder MapCartApi(this IEndpointRouteBuilder app)
    {
        // Every cart body is a few small fields: a product and a quantity, a currency, an email address (254 characters,
        // each escaped in JSON at worst).
        var api = app.MapGroup("api/cart").WithTags("Cart").WithRequestBodyLimit(MaxBodyBytes);
        api.MapGet("", GetCart).WithName("GetCart").WithSummary("The session's cart; empty (and no session started) without a valid session cookie.");
        api.MapPost("items", AddItemAsync).WithName("AddCartItem").WithSummary("Adds a quantity to a line atomically: concurrent adds never lose one.");
        api.MapPut("items/{productId}", SetItemAsync).WithName("SetCartItem").WithSummary("Sets a line's quantity; 0 removes it.");
        api.MapDelete("items/{productId}", RemoveItemAsync).WithName("RemoveCartItem").WithSummary("Removes a line.");
        api.MapCheckoutApi();
        api.MapPreferencesApi();
        api.MapWiringEndpoint("", "cart");
        return app;
    }

    public static async Task<Ok<CartView>> GetCart(HttpContext http, CartStore store, CatalogClient catalog)
    {
        var lines = CartSessionCookie.Read(http) is { } id ? await store.GetAsync(id) : null;
        return TypedResults.Ok(await ViewAsync(lines, catalog, http.RequestAborted));
    }

    public static async Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> AddItemAsync(AddItem? body, HttpContext http, CartStore store, CatalogClient catalog, CartSessionMetrics metrics, EventQueue events)
    {
        var errors = new Dictionary<string, string[]>();
        if (body?.ProductId is not > 0) errors["productId"] = ["A positive product id is required."];
        if (body?.Quantity is not { } quantity || quantity < 1 || quantity > store.Limits.MaxQuantityPerLine)
            errors["quantity"] = [$"1 to {store.Limits.MaxQuantityPerLine}."];
        if (errors.Count > 0) return (Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(errors);
        if (await ProductMissingAsync(catalog, body!.ProductId!.Value, http.RequestAborted) is { } missing) return missing;
        return await ChangeAsync(http, store, catalog, metrics, "add", id => store.AddAsync(id, body.ProductId!.Value, body.Quantity!.Value),
            async session => events.Enqueue(new AnalyticsEvent(EventRules.NewId(), EventTypes.CartItemAdded, DateTimeOffset.UtcNow,
                (await ClientContext.FromAsync(http))?.Visitor, body.ProductId!.Value, body.Quantity!.Value)));
    }

    public static async Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> SetItemAsync(string productId, SetQuantity? body, HttpContext http, CartStore store, CatalogClient catalog, CartSessionMetrics metrics)
    {
        var errors = new Dictionary<string, string[]>();
        if (!long.TryParse(productId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id <= 0)
            errors["productId"] = ["A positive product id is required."];
        if (body?.Quantity is not { } quantity || quantity < 0 || quantity > store.Limits.MaxQuantityPerLine)
            errors["quantity"] = [$"0 to {store.Limits.MaxQuantityPerLine}."];
        if (errors.Count > 0) return (Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(errors);
        if (body!.Quantity > 0 && await ProductMissingAsync(catalog, id, http.RequestAborted) is { } missing) return missing;
        return await ChangeAsync(http, store, catalog, metrics, "set", session => store.SetAsync(session, id, body.Quantity!.Value));
    }

    public static async Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> RemoveItemAsync(string productId, HttpContext http, CartStore store, CatalogClient catalog, CartSessionMetrics metrics)
    {
        if (!long.TryParse(productId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id <= 0)
            return (Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>)TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productId"] = ["A positive product id is required."] });
        if (CartSessionCookie.Read(http) is { } session)
        {
            var update = await store.RemoveAsync(session, id);
            metrics.Operation("remove", update.Change.ToString());
            return TypedResults.Ok(await ViewAsync(update.Lines, catalog, http.RequestAborted));
        }
        return TypedResults.Ok(await ViewAsync(null, catalog, http.RequestAborted));
    }

    // A change on an unknown session starts a fresh one (never adopting the client's id) and applies the change there.
    private static async Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>> ChangeAsync(
        HttpContext http, CartStore store, CatalogClient catalog, CartSessionMetrics metrics, string operation,
        Func<string, Task<CartUpdate>> change, Func<string, Task<bool>>? publish = null)
    {
        var session = CartSessionCookie.Read(http) ?? await CartSessionCookie.StartAsync(http, store, metrics);
        var update = await change(session);
        if (update.Change == CartChange.UnknownSession)
        {
            session = await CartSessionCookie.StartAsync(http, store, metrics);
            update = await change(session);
        }
        var result = update.Change;
        metrics.Operation(operation, result.ToString());
        if (result == CartChange.Applied && publish is not null)
        {
            await publish(session); // handed to the event queue: no round trip, and a dropped event never fails the change
        }
        return result switch
        {
            CartChange.OverMaxQuantity => TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["quantity"] = [$"A line holds at most {store.Limits.MaxQuantityPerLine}."] }),
            CartChange.OverMaxLines => TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productId"] = [$"A cart holds at most {store.Limits.MaxLines} lines."] }),
            _ => TypedResults.Ok(await ViewAsync(update.Lines, catalog, http.RequestAborted)), // the cart as the change left it: no second read
        };
    }

    // An unknown product is a 404; a catalog that cannot answer is a 503 (a line is never added unchecked).
    private static async Task<Results<Ok<CartView>, ProblemHttpResult, ValidationProblem>?> ProductMissingAsync(CatalogClient catalog, long productId, CancellationToken cancellationToken)
    {
        try
        {
            if (await catalog.GetAsync(productId, cancellationToken) is not null)
            {
                return null;
            }
            return TypedResults.Problem($"Product {productId} does not exist.", statusCode: StatusCodes.Status404NotFound);
        }
        catch (DependencyUnavailableException ex)
        {
            throw ex.WithDetail("The catalog cannot confirm the product right now; nothing was changed.");
        }
    }

    // Names and prices come from the catalog; if it cannot answer, the cart still reads, without them.
    private static async Task<CartView> ViewAsync(IReadOnlyDictionary<long, int>? lines, CatalogClient catalog, CancellationToken cancellationToken)
    {
        if (lines is null)
        {
            return new CartView([]);
        }
        var view = new List<CartLine>(lines.Count);
        foreach (var (productId, quantity) in lines.OrderBy(l => l.Key))
        {
            CatalogProduct? product = null;
            try
            {
                product = await catalog.GetAsync(productId, cancellationToken);
            }
            catch (DependencyUnavailableException)
            {
            }
            view.Add(new CartLine(productId, quantity, product?.Name, product?.Price));
        }
        return new CartView(view);
    }

}
