namespace ShopReference.Catalog.Apis;

public static class CatalogApi
{
    public static IEndpointRouteBuilder MapCatalogApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/catalog").WithTags("Catalog");
        api.MapWiringEndpoint("", "catalog");
        return app;
    }
}
