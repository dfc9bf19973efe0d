using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;
using ShopReference.Valkey.RateLimiting;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>The gateway's rate-limit configuration (section <c>RateLimiting</c>), validated at start.</summary>
public sealed partial class GatewayRateLimitOptions : IValidatableObject
{
    public const string Section = "RateLimiting";

    /// <summary>How many gateway instances share the limits; a fail-open fallback enforces Limit / GatewayInstances.</summary>
    [Range(1, 1000)]
    public int GatewayInstances { get; set; } = 1;

    /// <summary>During an outage, how long to decide without Valkey before asking it again.</summary>
    [Range(0.1, 300)]
    public double OutageProbeSeconds { get; set; } = 2;

    /// <summary>
    /// Proxies whose <c>X-Forwarded-For</c> and <c>X-Forwarded-Proto</c> are believed, as addresses or CIDR networks
    /// (an ingress such as Azure Container Apps' connects from its environment's subnet); from anyone else the
    /// headers are ignored. Empty behind an ingress means every client shares the ingress's quota: the gateway warns.
    /// </summary>
    public List<string> TrustedProxies { get; set; } = [];

    /// <summary>Ordered: the first policy that matches a request applies. The last must match every request (the default).</summary>
    public List<GatewayPolicy> Policies { get; set; } = [];

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Policies.Count == 0)
        {
            yield return new("At least one policy is required.", [nameof(Policies)]);
        }
        foreach (var policy in Policies)
        {
            if (!PolicyName().IsMatch(policy.Name))
            {
                yield return new($"Policy name '{policy.Name}' must be 1-32 characters of a-z, 0-9 and '-'.", [nameof(Policies)]);
            }
            if (policy.Limit is < 1 or > 1_000_000 || policy.WindowSeconds is < 1 or > 604_800)
            {
                yield return new($"Policy '{policy.Name}': Limit 1-1000000 and WindowSeconds 1-604800.", [nameof(Policies)]);
            }
        }
        if (Policies.Select(p => p.Name).Distinct(StringComparer.Ordinal).Count() != Policies.Count)
        {
            yield return new("Policy names must be unique.", [nameof(Policies)]);
        }
        if (Policies.Count > 0 && Policies[^1] is { } last && (last.Methods.Count > 0 || last.Paths.Count > 0 || last.Audience != ClientAudience.Any))
        {
            yield return new($"The last policy ('{last.Name}') must match every request (no Methods, Paths or Audience), so no method goes unlimited.", [nameof(Policies)]);
        }
        foreach (var proxy in TrustedProxies.Where(p => !System.Net.IPAddress.TryParse(p, out _) && !System.Net.IPNetwork.TryParse(p, out _)))
        {
            yield return new($"Trusted proxy '{proxy}' is not an IP address or a CIDR network.", [nameof(TrustedProxies)]);
        }
    }

    [GeneratedRegex("^[a-z0-9-]{1,32}$")]
    private static partial Regex PolicyName();
}

/// <summary>Which clients a policy applies to.</summary>
public enum ClientAudience
{
    Any,
    Anonymous,
    ApiKey,
}

public sealed class GatewayPolicy
{
    public string Name { get; set; } = "";
    public RateLimitAlgorithm Algorithm { get; set; } = RateLimitAlgorithm.SlidingWindowCounter;
    public int Limit { get; set; }
    public int WindowSeconds { get; set; }

    /// <summary>HTTP methods it covers; empty = all.</summary>
    public List<string> Methods { get; set; } = [];

    /// <summary>Path prefixes it covers; empty = all of /api.</summary>
    public List<string> Paths { get; set; } = [];

    public ClientAudience Audience { get; set; } = ClientAudience.Any;
    public OutageBehavior OnOutage { get; set; } = OutageBehavior.FailOpen;

    public bool Matches(HttpRequest request, ClientIdentity client) =>
        (Methods.Count == 0 || Methods.Contains(request.Method, StringComparer.OrdinalIgnoreCase)) &&
        (Paths.Count == 0 || Paths.Any(prefix => request.Path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase))) &&
        Audience switch
        {
            ClientAudience.Anonymous => !client.IsApiClient,
            ClientAudience.ApiKey => client.IsApiClient,
            _ => true,
        };
}
