using Microsoft.AspNetCore.Diagnostics;
using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Carts;
using ShopReference.CartSession.Orders;
using ShopReference.Valkey.Analytics;
using ShopReference.Valkey.Carts;
using StackExchange.Redis;

namespace ShopReference.CartSession.Extensions;

public static class Extensions
{
    /// <summary>The service's dependencies: the shared Valkey connection, its database and the cart store.</summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "cart");
        builder.AddNpgsqlDataSource("cartdb");
        var limits = builder.Configuration.GetSection("Cart").Get<CartLimits>() ?? new CartLimits();
        builder.Services.AddSingleton(sp => new CartStore(sp.GetRequiredService<IConnectionMultiplexer>(), limits));
        builder.Services.AddSingleton(sp => new CheckoutClaims(sp.GetRequiredService<IConnectionMultiplexer>(), limits));
        builder.Services.AddSingleton<CartSessionMetrics>();
        builder.AddStartupInitializer<OrdersDatabase>("orders-schema");
        builder.Services.AddScoped<CheckoutService>();
        builder.Services.AddSingleton<EventPublisher>();

        // The comparison: ASP.NET Core's session over IDistributedCache (Valkey, "cart:dcache:"), for preferences only.
        builder.Services.AddSession(options =>
        {
            options.Cookie.Name = PreferencesApi.CookieName;
            options.Cookie.HttpOnly = true;
            options.Cookie.SameSite = SameSiteMode.Lax;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.Cookie.IsEssential = true;
            options.IdleTimeout = limits.IdleTimeout;
        });
        builder.Services.AddExceptionHandler<CartUnavailableHandler>();
        // The defaults' resilience handler is replaced, not stacked: two pipelines would multiply the retries.
        // RemoveAllResilienceHandlers is marked for evaluation (EXTEXP0001); it is the documented way to do this.
#pragma warning disable EXTEXP0001
        builder.Services.AddHttpClient<CatalogClient>(http => http.BaseAddress = new Uri("https+http://catalog"))
            .RemoveAllResilienceHandlers()
            .AddStandardResilienceHandler(CatalogClient.Resilience);
#pragma warning restore EXTEXP0001
    }

    private sealed class CartUnavailableHandler(IProblemDetailsService problems) : IExceptionHandler
    {
        public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
        {
            if (exception is not CartUnavailableException)
            {
                return false;
            }
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = "5";
            return await problems.TryWriteAsync(new ProblemDetailsContext
            {
                HttpContext = context,
                Exception = exception,
                ProblemDetails = { Status = StatusCodes.Status503ServiceUnavailable, Detail = "The cart store is unavailable; nothing was changed. Retry shortly." },
            });
        }
    }
}
