using System.Net.Http.Headers;
using ShopReference.Shoppers;

namespace ShopReference.ShoppersApp;

/// <summary>
/// What one run needs, from the environment the AppHost gives it: where the gateway and the catalog are (service
/// discovery's <c>services__rate-limit__http__0</c> and <c>services__catalog__http__0</c>), how many shoppers for how
/// long (<c>Shoppers:Count</c>, <c>Shoppers:Seconds</c>), and the keys of the clients it speaks as.
/// </summary>
public sealed record ShoppersSettings(Uri Gateway, Uri? Catalog, int Count, int Seconds, string ShopperKey, string? CatalogAdminKey, string? OperatorKey)
{
    public const int DefaultCount = 24;
    public const int DefaultSeconds = 60;
    public const int MaxSeconds = 3600;

    public static bool TryRead(IConfiguration configuration, out ShoppersSettings settings, out string problem)
    {
        settings = null!;
        var gateway = configuration["Shoppers:Gateway"] ?? configuration["services:rate-limit:http:0"];
        var catalog = configuration["Shoppers:Catalog"] ?? configuration["services:catalog:http:0"];
        var count = configuration.GetValue("Shoppers:Count", DefaultCount);
        var seconds = configuration.GetValue("Shoppers:Seconds", DefaultSeconds);
        var key = configuration["Shoppers:ShopperKey"];
        problem = gateway is null || !Uri.TryCreate(gateway, UriKind.Absolute, out _) ? "Shoppers:Gateway (the gateway's address) is required."
            : string.IsNullOrEmpty(key) ? "Shoppers:ShopperKey (the dashboard-shoppers client's key) is required."
            : count is < 1 or > ShopperSimulation.MaxKeyedShoppers ? $"Shoppers:Count is {count}; 1 to {ShopperSimulation.MaxKeyedShoppers}."
            : seconds is < 1 or > MaxSeconds ? $"Shoppers:Seconds is {seconds}; 1 to {MaxSeconds}."
            : "";
        if (problem.Length > 0)
        {
            return false;
        }
        settings = new(new Uri(gateway!), catalog is null ? null : new Uri(catalog), count, seconds, key!,
            NullIfEmpty(configuration["Shoppers:CatalogAdminKey"]), NullIfEmpty(configuration["Shoppers:OperatorKey"]));
        return true;
    }

    public SimulationOptions ToOptions() => new()
    {
        Gateway = Gateway,
        Shoppers = Count,
        Duration = TimeSpan.FromSeconds(Seconds),
        ShopperKey = ShopperKey,
        CatalogAdminKey = CatalogAdminKey,
        // The hot-key expiries go to the catalog's operator route, which the gateway does not route: only with both.
        ExpireProduct = Catalog is not null && OperatorKey is not null ? EvictAsync : null,
        // A person reads a page in about a second: each shopper stays inside the anonymous read quota (100 a minute)
        // until it bursts, so the 429s in the result are the bursts', not the simulation's pace.
        ThinkTime = TimeSpan.FromMilliseconds(700),
    };

    // A fresh operator token per expiry (one every 15 s): a run may outlast any one token.
    private async Task EvictAsync(long product, CancellationToken cancellationToken)
    {
        using var gateway = new HttpClient { BaseAddress = Gateway };
        var token = await ShopClient.TokenAsync(gateway, "operator", OperatorKey!, cancellationToken);
        using var catalog = new HttpClient { BaseAddress = Catalog };
        using var evict = new HttpRequestMessage(HttpMethod.Delete, $"/admin/cache/products/{product}");
        evict.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value);
        // A refused eviction (the catalog restarting) only skips this stampede's expiry: the readers still read.
        using var evicted = await catalog.SendAsync(evict, cancellationToken);
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
