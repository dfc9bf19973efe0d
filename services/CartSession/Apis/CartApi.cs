namespace ShopReference.CartSession.Apis;

public static class CartApi
{
    public static IEndpointRouteBuilder MapCartApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/cart").WithTags("Cart");
        api.MapWiringEndpoint("", "cart");
        return app;
    }
}
