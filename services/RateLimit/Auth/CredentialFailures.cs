using System.Threading.RateLimiting;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.RateLimit.Auth;

/// <summary>
/// Slows down key guessing: every refused credential (an unknown API key, a bad client secret, an invalid token) counts
/// against the client's address in a fixed window in Valkey, shared by every gateway instance; once an address has
/// used up its failures, its credentialed requests are answered 429 without being checked until the window ends.
/// Requests without a credential are not affected. If Valkey cannot count, credentials are still checked (fail-open):
/// a guess still has to be right, and the rate-limit policies keep applying.
/// </summary>
public sealed class CredentialFailures : IAsyncDisposable
{
    /// <summary>Refused credentials allowed per address per window.</summary>
    public const int Limit = 10;
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly PartitionedRateLimiter<string> _limiter;
    private readonly ILogger<CredentialFailures> _logger;

    public CredentialFailures(IConnectionMultiplexer valkey, ILogger<CredentialFailures> logger)
    {
        var database = valkey.GetDatabase();
        var options = new ValkeyRateLimiterOptions { PermitLimit = Limit, Window = Window };
        _limiter = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.Get(address,
            a => new FixedWindowLimiter(database, $"authfail:{a}", options)));
        _logger = logger;
    }

    /// <summary>When the address has no failures left: how long until it has; otherwise null.</summary>
    public async Task<TimeSpan?> BlockedAsync(string address) => await DecideAsync(address, permits: 0);

    /// <summary>Counts one refused credential; returns how long the address is blocked if that used up its failures.</summary>
    public async Task<TimeSpan?> FailedAsync(string address) => await DecideAsync(address, permits: 1);

    private async Task<TimeSpan?> DecideAsync(string address, int permits)
    {
        try
        {
            using var lease = await _limiter.AcquireAsync(address, permits);
            return lease.IsAcquired ? null : lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : Window;
        }
        catch (Exception ex) when (ShopReference.Valkey.Resilience.ValkeyFailures.IsUnavailable(ex))
        {
            _logger.LogWarning("Credential failures cannot be counted (Valkey unavailable): {Message}", ex.Message);
            return null;
        }
    }

    public ValueTask DisposeAsync() => _limiter.DisposeAsync();
}
