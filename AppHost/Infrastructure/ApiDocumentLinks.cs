namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Links on a service's resource in the dashboard to its API documents as a user reaches them, through the gateway:
/// the OpenAPI document (every environment) and the Scalar reference over it (Development, which `dotnet run` is).
/// </summary>
public static class ApiDocumentLinks
{
    /// <param name="prefix">The service's path prefix at the gateway (<c>catalog</c>, <c>cart</c>, …).</param>
    public static IResourceBuilder<ProjectResource> WithApiDocumentLinks(
        this IResourceBuilder<ProjectResource> service, IResourceBuilder<ProjectResource> gateway, string prefix)
    {
        if (!service.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return service;
        }
        var edge = gateway.GetEndpoint("http");
        return service
            .WithUrl(ReferenceExpression.Create($"{edge}/api/{prefix}/docs"), $"{prefix} API reference (Scalar)")
            .WithUrl(ReferenceExpression.Create($"{edge}/api/{prefix}/openapi/v1.json"), $"{prefix} OpenAPI document");
    }
}
