using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using ShopReference.Valkey.RateLimiting;
using StackExchange.Redis;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>A configured policy with its limiter: Valkey-backed per client, wrapped in the policy's outage behaviour.</summary>
public sealed record PolicyLimiter(GatewayPolicy Policy, ResilientPartitionedRateLimiter<string> Limiter)
{
    /// <summary><c>"name";q=limit;w=window</c>: the RateLimit-Policy field of draft-ietf-httpapi-ratelimit-headers.</summary>
    public string PolicyHeader { get; } = $"\"{Policy.Name}\";q={Policy.Limit};w={Policy.WindowSeconds}";
}

/// <summary>Builds one limiter per configured policy and picks the first policy that matches a request.</summary>
public sealed class PolicyLimiters : IAsyncDisposable
{
    private readonly List<PolicyLimiter> _policies;

    public PolicyLimiters(IOptions<GatewayRateLimitOptions> options, IConnectionMultiplexer valkey, RateLimitMetrics metrics)
    {
        var settings = options.Value;
        var database = valkey.GetDatabase();
        _policies = [.. settings.Policies.Select(policy =>
        {
            var limiterOptions = new ValkeyRateLimiterOptions { KeyPrefix = "ratelimit", PermitLimit = policy.Limit, Window = TimeSpan.FromSeconds(policy.WindowSeconds) };
            var primary = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.Get(client,
                c => ValkeyRateLimiters.Create(policy.Algorithm, database, $"{policy.Name}:{c}", limiterOptions)));
            var fallback = policy.OnOutage == OutageBehavior.FailOpen
                ? PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.Get(client,
                    _ => ValkeyRateLimiters.CreateInProcessFallback(policy.Algorithm, limiterOptions, settings.GatewayInstances)))
                : null;
            var limiter = new ResilientPartitionedRateLimiter<string>(primary, fallback, TimeSpan.FromSeconds(settings.OutageProbeSeconds));
            limiter.OutageStarted += _ => metrics.OutageStarted(policy.Name);
            limiter.OutageEnded += () => metrics.OutageEnded(policy.Name);
            return new PolicyLimiter(policy, limiter);
        })];
    }

    public IReadOnlyList<PolicyLimiter> All => _policies;

    public PolicyLimiter? Match(HttpRequest request, ClientIdentity client) =>
        _policies.FirstOrDefault(p => p.Policy.Matches(request, client));

    public async ValueTask DisposeAsync()
    {
        foreach (var policy in _policies)
        {
            await policy.Limiter.DisposeAsync();
        }
    }
}
