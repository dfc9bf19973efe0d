namespace ShopReference.Catalog.Extensions;

public static class Extensions
{
    /// <summary>The service's dependencies: the shared Valkey connection and its database.</summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddValkey(service: "catalog");
        builder.AddNpgsqlDataSource("catalogdb");
    }
}
