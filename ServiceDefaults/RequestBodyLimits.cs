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

    /// <summary>
    /// An announced body up to this size is read and discarded after its 413, so the connection serves the client's
    /// next request; a larger one closes the connection instead.
    /// </summary>
    public long DrainBytes { get; set; } = 1024 * 1024;
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
        var options = app.ApplicationServices.GetRequiredService<IOptions<RequestBodyLimitOptions>>().Value;
        return app.Use(async (context, next) =>
        {
            var limit = context.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>()?.MaxRequestBodySize ?? options.DefaultBytes;
            var feature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
            if (context.Request.ContentLength is { } announced && announced > limit)
            {
                // Answered before a byte is read. The server then discards the unread body so that the connection can
                // serve the next request: closing it while the client still sends would reach the client as a reset,
                // not as this answer. That discard needs the body within the server's limit, so it is raised to the
                // announced size, up to DrainBytes; past that the connection is closed after the answer.
                if (announced <= options.DrainBytes && feature is { IsReadOnly: false })
                {
                    feature.MaxRequestBodySize = announced;
                }
                else
                {
                    context.Response.Headers.Connection = "close";
                }
                await Results.Problem($"The request body is larger than this route's limit of {limit} bytes.",
                    statusCode: StatusCodes.Status413PayloadTooLarge).ExecuteAsync(context);
                return;
            }
            if (feature is { IsReadOnly: false })
            {
                feature.MaxRequestBodySize = limit;
            }
            await next(context);
        });
    }

    private sealed record BodyLimit(long? MaxRequestBodySize) : IRequestSizeLimitMetadata;
}
