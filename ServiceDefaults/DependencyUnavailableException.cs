namespace Microsoft.Extensions.Hosting;

/// <summary>
/// A service this request depends on (the catalog, the event stream, the order store) cannot serve it now, and the
/// caller should retry: <see cref="UnavailableDependencyHandler"/> answers 503 with <c>Retry-After</c> and
/// <see cref="Exception.Message"/> as the ProblemDetails' detail, in one place. The message says what the failure left
/// unchanged ("nothing was changed", "no order was placed"), which is what a client needs to decide to retry.
/// </summary>
public sealed class DependencyUnavailableException(string detail, TimeSpan retryAfter, Exception? innerException = null)
    : Exception(detail, innerException)
{
    /// <summary>How long the caller should wait before it retries.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;

    /// <summary>The same failure, told with what this caller's request left unchanged.</summary>
    public DependencyUnavailableException WithDetail(string detail) => new(detail, RetryAfter, this);
}
