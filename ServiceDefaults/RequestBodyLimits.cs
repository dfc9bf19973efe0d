using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>The request body a route takes when it declares no limit of its own.</summary>
public sealed class RequestBodyLimitOptions
{
    /// <summary>
    /// 16 KiB, where the server's own default is 30 MB. The largest body this shop takes, a product with 2,000 characters
    /// of description, fits even with every character escaped; the gateway forwards nothing larger either.
    /// </summary>
    public long DefaultBytes { get; set; } = 16 * 1024;
}

/// <summary>
/// Every request body is bounded by its route: the limit a route declares with <see cref="WithRequestBodyLimit"/>, or
/// <see cref="RequestBodyLimitOptions.DefaultBytes"/> (ASP.NET Core's routing applies a declared limit by itself, but
/// leaves every other route at the server's 30 MB). A body announced larger (<c>Content-Length</c>) is a 413
/// ProblemDetails naming the limit before any of it is read; a chunked one that grows past the limit fails when it is
/// read, which the endpoint answers with 413 too. Either way the handler never sees it, so nothing changes.
/// </summary>
public static class RequestBodyLimits
{
    /// <summary>Declares the largest body <paramref name="endpoint"/> accepts, in bytes.</summary>
    public static TBuilder WithRequestBodyLimit<TBuilder>(this TBuilder endpoint, long bytes) where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(new BodyLimit(bytes));

    /// <summary>Applies each route's limit; after routing (the limit is the matched endpoint's), before authentication.</summary>
    public static IApplicationBuilder UseRequestBodyLimits(this IApplicationBuilder app)
    {
        var defaultBytes = app.ApplicationServices.GetRequiredService<IOptions<RequestBodyLimitOptions>>().Value.DefaultBytes;
        return app.Use(async (context, next) =>
        {
            var limit = context.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>()?.MaxRequestBodySize ?? defaultBytes;
            if (context.Request.ContentLength > limit)
            {
                // The body stays unread, so the connection cannot carry another request: close it after this answer,
                // or a client that reuses it would have its next request cut off.
                context.Response.Headers.Connection = "close";
                await Results.Problem($"The request body is larger than this route's limit of {limit} bytes.",
                    statusCode: StatusCodes.Status413PayloadTooLarge).ExecuteAsync(context);
                return;
            }
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
            {
                feature.MaxRequestBodySize = limit;
            }
            await next(context);
        });
    }

    private sealed record BodyLimit(long? MaxRequestBodySize) : IRequestSizeLimitMetadata;
}
