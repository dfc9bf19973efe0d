using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;
using ShopReference.Valkey.Resilience;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The one answer every service gives when a store or service it depends on cannot serve a request — Valkey
/// (<see cref="ValkeyFailures"/>), PostgreSQL (a transient Npgsql failure: the server restarting, shutting down,
/// unreachable) or another service (<see cref="DependencyUnavailableException"/>, e.g. the catalog client's) — 503
/// ProblemDetails with <c>Retry-After</c>, never a 500 or a hang. The one deliberate exception is checkout's "outcome
/// unknown" answer, which says something different: the order may have been placed. Routes with a documented degrade
/// (the catalog reads PostgreSQL when Valkey fails, the gateway's fail-open policies) handle the failure before it
/// gets here. Anything else is a defect and stays a 500.
/// </summary>
public sealed class UnavailableDependencyHandler(IProblemDetailsService problems, ILogger<UnavailableDependencyHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        var (detail, retryAfter) = exception switch
        {
            DependencyUnavailableException dependency => (dependency.Message, dependency.RetryAfter),
            _ when ValkeyFailures.IsUnavailable(exception) => (Retry("Valkey", ValkeyFailures.RetryAfter(exception)), ValkeyFailures.RetryAfter(exception)),
            _ when IsPostgresUnavailable(exception) => (Retry("PostgreSQL", PostgresRetryAfter), PostgresRetryAfter),
            _ => (null, TimeSpan.Zero),
        };
        if (detail is null)
        {
            return false;
        }
        logger.LogWarning("Dependency unavailable for {Method} {Path}: {Detail} ({Message})", context.Request.Method, context.Request.Path, detail,
            (exception.InnerException ?? exception).Message);
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
                Detail = detail,
            },
        });
    }

    /// <summary>How long a PostgreSQL restart or failover usually takes to be over.</summary>
    public static readonly TimeSpan PostgresRetryAfter = TimeSpan.FromSeconds(5);

    private static string Retry(string store, TimeSpan retryAfter) =>
        $"{store} cannot serve this request right now; retry in {(int)retryAfter.TotalSeconds} s.";

    /// <summary>A failure a retry can cure: Npgsql marks them transient (connection lost, server shutting down or starting).</summary>
    public static bool IsPostgresUnavailable(Exception exception) => exception switch
    {
        NpgsqlException npgsql => npgsql.IsTransient,
        { InnerException: { } inner } => IsPostgresUnavailable(inner),
        _ => false,
    };
}
