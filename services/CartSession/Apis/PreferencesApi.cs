using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;

namespace ShopReference.CartSession.Apis;

public sealed record Preferences(string Currency, IReadOnlyList<long> RecentlyViewed);
public sealed record SetCurrency(string? Currency);
public sealed record ViewedProduct(long? ProductId);

/// <summary>
/// The comparison (docs/cart.md): preferences kept the stock way, with ASP.NET Core's session middleware over
/// <c>IDistributedCache</c> on the same Valkey. The whole session is one blob, loaded at the first access and written
/// back whole, so two concurrent requests that each change it race and the last write wins.
/// That is acceptable for a preference a user sets by hand; it is why the cart does not work this way.
/// </summary>
public static class PreferencesApi
{
    public const string CookieName = "shop.prefs";
    public const int MaxRecentlyViewed = 20;
    private const string SessionKey = "preferences";
    private static readonly string[] Currencies = ["EUR", "USD", "GBP"];

    public static RouteGroupBuilder MapPreferencesApi(this RouteGroupBuilder api)
    {
        var preferences = api.MapGroup("preferences").WithTags("Preferences (ASP.NET Core session)");
        preferences.MapGet("", GetAsync).WithName("GetPreferences").WithSummary("Preferences from the ASP.NET Core session blob.");
        preferences.MapPut("", SetCurrencyAsync).WithName("SetCurrency").WithSummary("Sets the display currency (EUR, USD or GBP).");
        preferences.MapPost("recently-viewed", AddViewedAsync).WithName("AddRecentlyViewed")
            .WithSummary("Remembers a viewed product: a read-modify-write of the whole blob, which concurrent requests can lose.");
        return api;
    }

    public static async Task<Ok<Preferences>> GetAsync(HttpContext http, CancellationToken cancellationToken) => TypedResults.Ok(await LoadAsync(http));

    public static async Task<Results<Ok<Preferences>, ValidationProblem>> SetCurrencyAsync(SetCurrency? body, HttpContext http)
    {
        if (body?.Currency is not { } currency || !Currencies.Contains(currency, StringComparer.Ordinal))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["currency"] = [$"One of {string.Join(", ", Currencies)}."] });
        }
        return TypedResults.Ok(await SaveAsync(http, await LoadAsync(http) with { Currency = currency }));
    }

    public static async Task<Results<Ok<Preferences>, ValidationProblem>> AddViewedAsync(ViewedProduct? body, HttpContext http)
    {
        if (body?.ProductId is not > 0)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productId"] = ["A positive product id is required."] });
        }
        var current = await LoadAsync(http);
        var viewed = current.RecentlyViewed.Where(id => id != body.ProductId).Prepend(body.ProductId.Value).Take(MaxRecentlyViewed).ToList();
        return TypedResults.Ok(await SaveAsync(http, current with { RecentlyViewed = viewed }));
    }

    // LoadAsync first: without it the middleware would read Valkey synchronously on the first access.
    private static async Task<Preferences> LoadAsync(HttpContext http)
    {
        await http.Session.LoadAsync(http.RequestAborted);
        return http.Session.Get(SessionKey) is { } blob
            ? JsonSerializer.Deserialize<Preferences>(blob, JsonSerializerOptions.Web)!
            : new Preferences("EUR", []);
    }

    // Written before the answer: the middleware would write the blob back only once the response is on its way, so a
    // client that read the answer and asked another replica at once could still find the old blob there.
    private static async Task<Preferences> SaveAsync(HttpContext http, Preferences preferences)
    {
        http.Session.Set(SessionKey, JsonSerializer.SerializeToUtf8Bytes(preferences, JsonSerializerOptions.Web));
        await http.Session.CommitAsync(http.RequestAborted);
        return preferences;
    }
}
