namespace ShopReference.Valkey.RateLimiting;

/// <summary>Limit and window of a Valkey rate limiter; validated when a limiter is built.</summary>
public sealed record ValkeyRateLimiterOptions
{
    /// <summary>
    /// The first segment of every key a limiter writes: <c>{KeyPrefix}:{algorithm}:{{partition}}</c>. Name it after the
    /// service that owns the limits, and grant that service's Valkey user <c>~{KeyPrefix}:*</c> and nothing wider.
    /// </summary>
    public required string KeyPrefix { get; init; }

    /// <summary>Permits per <see cref="Window"/> (for token bucket and GCRA: the burst capacity too).</summary>
    public required int PermitLimit { get; init; }

    /// <summary>The window; for the concurrency limiter, the lease duration a holder renews while it holds.</summary>
    public required TimeSpan Window { get; init; }

    /// <summary>Used for idle tracking and lease renewal only: decisions use the server's clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        if (string.IsNullOrEmpty(KeyPrefix) || KeyPrefix.Length > 64 || KeyPrefix.Any(c => c is '{' or '}' or ' ' || char.IsControl(c)))
        {
            throw new ArgumentException("The key prefix is 1-64 characters without braces, spaces or control characters.", nameof(KeyPrefix));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(PermitLimit, 1, nameof(PermitLimit));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(PermitLimit, 1_000_000, nameof(PermitLimit));
        if (Window < TimeSpan.FromMilliseconds(10) || Window > TimeSpan.FromDays(7))
        {
            throw new ArgumentOutOfRangeException(nameof(Window), Window, "The window must be between 10 ms and 7 days.");
        }
    }
}
