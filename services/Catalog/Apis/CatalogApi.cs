using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.OutputCaching;
using ShopReference.Catalog.Analytics;
using ShopReference.Catalog.Caching;
using ShopReference.Catalog.Data;
using ShopReference.Catalog.Model;
using ShopReference.Contracts.Events;

namespace ShopReference.Catalog.Apis;

/// <summary>What the catalog handlers need, bundled for <c>[AsParameters]</c>.</summary>
public sealed record CatalogServices(ProductCache Cache, CatalogDatabase Database, IOutputCacheStore OutputCache, CatalogMetrics Metrics, EventQueue Events);

public sealed record TrendingProduct(int Rank, long ProductId, string Name, decimal Price, long Views);
public sealed record Trending(string Window, bool Degraded, IReadOnlyList<TrendingProduct> Products);

/// <summary>Counters of this catalog instance (each replica keeps its own); <c>Instance</c> (host and process) only for an operator.</summary>
public sealed record CatalogStats(string? Instance, long Hits, long Misses, long Coalesced, long Stale, long OriginLoads,
    long LockWaits, double LockWaitMs, long FillsRefused, long Degraded, double CdcLagMs,
    long LocalHits, long LocalMisses, long LocalInvalidations, long LocalFlushes, int LocalEntries);

public static class CatalogApi
{
    public const string ListPolicy = "products";
    public const string ListTag = "products";

    public static IEndpointRouteBuilder MapCatalogApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/catalog").WithTags("Catalog");

        api.MapGet("products/{id}", GetProduct)
            .WithName("GetProduct")
            .WithSummary("A product, cache-aside with herd protection and a near cache. X-Cache tells how it was served: hit-local, hit, miss, coalesced or stale.");
        api.MapGet("products/trending", GetTrending)
            .WithName("GetTrendingProducts")
            .WithSummary("The most viewed products (from analytics, cached 30 s); an empty list, marked degraded, when analytics is down.");
        api.MapPut("products/{id}", UpdateProduct)
            .RequireAuthorization(Permissions.CatalogWrite)
            .WithName("UpdateProduct")
            .WithSummary("Write-through update (permission catalog.write). If-Match must carry the product's current ETag; a stale one is 412.");
        api.MapGet("products", ListProducts)
            .CacheOutput(ListPolicy)
            .WithName("ListProducts")
            .WithSummary("A page of products, optionally in one category. Output-cached in Valkey; writes and change-data capture evict it.");
        api.MapGet("stats", GetStats)
            .WithName("GetCatalogStats")
            .WithSummary("This instance's cache counters: hits, misses, coalesced, stale, origin loads, lock waits, CDC lag, near cache.");

        api.MapWiringEndpoint("", "catalog");

        var admin = app.MapGroup("admin").WithTags("Catalog operations").RequireAuthorization(Permissions.Operator);
        admin.MapDelete("cache/products/{id}", EvictProduct)
            .WithName("EvictCachedProduct")
            .WithSummary("Removes one product's cache entry, so the next reads miss together (the stampede demonstration).");
        return app;
    }

    public static async Task<Results<Ok<Product>, StatusCodeHttpResult, ProblemHttpResult, ValidationProblem>> GetProduct(
        string id, HttpContext http, [AsParameters] CatalogServices services, CancellationToken cancellationToken)
    {
        if (!ProductRules.TryParseId(id, out var productId))
        {
            return InvalidId(id);
        }
        var (product, outcome) = await services.Cache.GetAsync(productId, cancellationToken);
        http.Response.Headers["X-Cache"] = CacheHeader(outcome);
        if (product is null)
        {
            return TypedResults.Problem($"Product {productId} does not exist.", statusCode: StatusCodes.Status404NotFound);
        }
        // A view is a visitor's read through the gateway; another service's lookup carries no client context and is not one.
        if (await ClientContext.FromAsync(http) is { } client)
        {
            services.Events.Enqueue(ProductViews.For(client, productId)); // appended off the request path; never fails the read
        }
        http.Response.Headers.ETag = product.ETag;
        return http.Request.Headers.IfNoneMatch == product.ETag
            ? TypedResults.StatusCode(StatusCodes.Status304NotModified)
            : TypedResults.Ok(product);
    }

    public static async Task<Results<Ok<Product>, ProblemHttpResult, ValidationProblem>> UpdateProduct(
        string id, ProductUpdate? update, HttpContext http, [AsParameters] CatalogServices services, CancellationToken cancellationToken)
    {
        if (!ProductRules.TryParseId(id, out var productId))
        {
            return InvalidId(id);
        }
        if (http.Request.Headers.IfMatch.Count == 0)
        {
            return TypedResults.Problem("If-Match with the product's ETag is required, so an update never overwrites one it has not seen.",
                statusCode: StatusCodes.Status428PreconditionRequired);
        }
        if (!TryParseETag(http.Request.Headers.IfMatch.ToString(), out var expectedVersion))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["If-Match"] = ["Must be one strong ETag such as \"v3\"."] });
        }
        var errors = ProductRules.Validate(update);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var (outcome, product) = await services.Database.UpdateAsync(productId, expectedVersion, update!, cancellationToken);
        switch (outcome)
        {
            case UpdateOutcome.NotFound:
                return TypedResults.Problem($"Product {productId} does not exist.", statusCode: StatusCodes.Status404NotFound);
            case UpdateOutcome.VersionMismatch:
                return TypedResults.Problem($"Product {productId} has changed since version {expectedVersion}; read it again.",
                    statusCode: StatusCodes.Status412PreconditionFailed);
            case UpdateOutcome.UnknownCategory:
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["category"] = [$"Unknown category '{update!.Category}'."] });
        }

        // Write-through: the new version goes to Valkey now (an older fill can never replace it), and every cached page
        // that might show the product is evicted from the shared output cache.
        await services.Cache.StoreAsync(product!);
        await services.OutputCache.EvictByTagAsync(ListTag, cancellationToken);
        http.Response.Headers.ETag = product!.ETag;
        return TypedResults.Ok(product);
    }

    public static async Task<Results<Ok<ProductPage>, ValidationProblem>> ListProducts(
        [AsParameters] CatalogServices services, CancellationToken cancellationToken, string? category = null, int page = 1, int pageSize = 20)
    {
        var errors = new Dictionary<string, string[]>();
        if (category is { Length: 0 or > ProductRules.MaxCategoryLength } || (category is not null && !ProductRules.IsCleanText(category)))
            errors["category"] = [$"1 to {ProductRules.MaxCategoryLength} characters, no control characters."];
        if (page is < 1 or > 10_000)
            errors["page"] = ["1 to 10000."];
        if (pageSize is < 1 or > ProductRules.MaxPageSize)
            errors["pageSize"] = [$"1 to {ProductRules.MaxPageSize}."];
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }
        return TypedResults.Ok(await services.Database.ListAsync(category, page, pageSize, cancellationToken));
    }

    public static async Task<Results<Ok<Trending>, ValidationProblem>> GetTrending(
        TrendingClient trending, ProductCache cache, CancellationToken cancellationToken, string window = "24h", int top = 10)
    {
        var errors = new Dictionary<string, string[]>();
        if (window is not ("1h" or "24h" or "7d")) errors["window"] = ["One of 1h, 24h, 7d."];
        if (top is < 1 or > 50) errors["top"] = ["1 to 50."];
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }
        var (entries, degraded) = await trending.TopAsync(window, top, cancellationToken);
        // Names and prices from the product cache, all at once (pipelined on the one connection), not one after another.
        var found = await Task.WhenAll(entries.Select(async e => (Entry: e, (await cache.GetAsync(e.ProductId, cancellationToken)).Product)));
        var products = found.Where(f => f.Product is not null)
            .Select((f, i) => new TrendingProduct(i + 1, f.Product!.Id, f.Product.Name, f.Product.Price, f.Entry.Count)).ToList();
        return TypedResults.Ok(new Trending(window, degraded, products));
    }

    public static async Task<Ok<CatalogStats>> GetStats(CatalogMetrics metrics, HttpContext http)
    {
        var c = metrics.Counters;
        var user = await http.AuthenticateAsync(); // anonymous route; an operator's token adds the instance
        var instance = user.Succeeded && user.Principal.Has(Permissions.Operator) ? $"{Environment.MachineName}:{Environment.ProcessId}" : null;
        return TypedResults.Ok(new CatalogStats(instance, c.Hits, c.Misses, c.CoalescedReads, c.StaleReads,
            c.OriginLoads, c.LockWaits, c.LockWaitTime.TotalMilliseconds, c.FillsRefused, metrics.DegradedCount, metrics.LastCdcLagMilliseconds,
            metrics.Local.LocalHits, metrics.Local.LocalMisses, metrics.Local.Invalidations, metrics.Local.Flushes, metrics.LocalEntries));
    }

    public static async Task<Results<NoContent, ValidationProblem>> EvictProduct(string id, ProductCache cache)
    {
        if (!ProductRules.TryParseId(id, out var productId))
        {
            return InvalidId(id);
        }
        await cache.EvictAsync(productId);
        return TypedResults.NoContent();
    }

    /// <summary>The <c>X-Cache</c> value: hit, hit-local, miss, coalesced or stale.</summary>
    public static string CacheHeader(ShopReference.Valkey.Caching.CacheOutcome outcome) => outcome switch
    {
        ShopReference.Valkey.Caching.CacheOutcome.HitLocal => "hit-local",
        _ => outcome.ToString().ToLowerInvariant(),
    };

    private static ValidationProblem InvalidId(string id) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["id"] = [$"'{Truncate(id)}' is not a product id (a positive integer)."] });

    private static string Truncate(string text) => text.Length <= 40 ? text : text[..40] + "…";

    private static bool TryParseETag(string header, out int version)
    {
        version = 0;
        return header.Length >= 4 && header.StartsWith("\"v", StringComparison.Ordinal) && header.EndsWith('"')
            && int.TryParse(header.AsSpan(2, header.Length - 3), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out version);
    }
}
