using System.Threading.RateLimiting;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.RateLimit.Auth;

/// <summary>
/// Slows down key guessing: every refused credential (an unknown API key, a bad client secret, an invalid token) counts
/// against the client's address in a fixed window in Valkey, shared by every gateway instance; once an address has
/// used up its failures, its refused credentials are answered 429 until the window ends. A valid credential is never
/// refused for its address: clients behind one ingress or NAT share an address, and an attacker must not be able to
/// lock them out with ten bad keys. That costs the lockout nothing it could protect: a key is at least 16 of 64
/// symbols (2^96), beyond guessing at any rate; the lockout bounds the work and noise of guessing, not its odds.
/// If Valkey cannot count, credentials are still checked (fail-open): the rate-limit policies keep applying.
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
        var options = new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = Limit, Window = Window };
        _limiter = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.Get(address,
            a => new FixedWindowLimiter(database, $"authfail:{a}", options)));
        _logger = logger;
    }

    /// <summary>Counts one refused credential; returns how long the address is blocked when it has no failures left, else null.</summary>
    public async Task<TimeSpan?> FailedAsync(string address)
    {
        try
        {
            using var lease = await _limiter.AcquireAsync(address, permitCount: 1);
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
