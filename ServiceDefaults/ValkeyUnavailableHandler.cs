using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using ShopReference.Valkey.Resilience;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The one answer every service gives when Valkey cannot serve a request (<see cref="ValkeyFailures"/>): 503
/// ProblemDetails with <c>Retry-After</c>, never a 500 or a hang. Routes with a documented degrade (the catalog reads
/// PostgreSQL, the gateway's fail-open policies) handle the failure before it gets here.
/// </summary>
public sealed class ValkeyUnavailableHandler(IProblemDetailsService problems, ILogger<ValkeyUnavailableHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (!ValkeyFailures.IsUnavailable(exception))
        {
            return false;
        }
        logger.LogWarning("Valkey unavailable for {Method} {Path}: {Message}", context.Request.Method, context.Request.Path, exception.Message);
        var retryAfter = ValkeyFailures.RetryAfter(exception);
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = ((int)retryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails =
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Service Unavailable",
                Detail = $"Valkey cannot serve this request right now; retry in {(int)retryAfter.TotalSeconds} s.",
            },
        });
    }
}
