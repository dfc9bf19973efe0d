using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;
using ShopReference.Valkey.Resilience;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The one answer every service gives when a store it depends on cannot serve a request — Valkey
/// (<see cref="ValkeyFailures"/>) or PostgreSQL (a transient Npgsql failure: the server restarting, shutting down,
/// unreachable) — 503 ProblemDetails with <c>Retry-After</c>, never a 500 or a hang. Routes with a documented degrade
/// (the catalog reads PostgreSQL when Valkey fails, the gateway's fail-open policies) handle the failure before it
/// gets here. Anything else is a defect and stays a 500.
/// </summary>
public sealed class UnavailableDependencyHandler(IProblemDetailsService problems, ILogger<UnavailableDependencyHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        var (store, retryAfter) = ValkeyFailures.IsUnavailable(exception) ? ("Valkey", ValkeyFailures.RetryAfter(exception))
            : IsPostgresUnavailable(exception) ? ("PostgreSQL", TimeSpan.FromSeconds(5))
            : (null, TimeSpan.Zero);
        if (store is null)
        {
            return false;
        }
        logger.LogWarning("{Store} unavailable for {Method} {Path}: {Message}", store, context.Request.Method, context.Request.Path, exception.Message);
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
                Detail = $"{store} cannot serve this request right now; retry in {(int)retryAfter.TotalSeconds} s.",
            },
        });
    }

    /// <summary>A failure a retry can cure: Npgsql marks them transient (connection lost, server shutting down or starting).</summary>
    public static bool IsPostgresUnavailable(Exception exception) => exception switch
    {
        NpgsqlException npgsql => npgsql.IsTransient,
        { InnerException: { } inner } => IsPostgresUnavailable(inner),
        _ => false,
    };
}
