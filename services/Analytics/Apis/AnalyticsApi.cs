namespace ShopReference.Analytics.Apis;

public static class AnalyticsApi
{
    public static IEndpointRouteBuilder MapAnalyticsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/analytics").WithTags("Analytics");
        api.MapWiringEndpoint("", "analytics");
        return app;
    }
}
