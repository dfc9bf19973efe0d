namespace ShopReference.RateLimit.Apis;

public static class RateLimitApi
{
    public static IEndpointRouteBuilder MapRateLimitApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/ratelimit").WithTags("RateLimit");
        api.MapWiringEndpoint("", "ratelimit");
        return app;
    }
}
