using Microsoft.AspNetCore.Http.HttpResults;
using ShopReference.RateLimit.RateLimiting;

namespace ShopReference.RateLimit.Apis;

/// <summary>A policy as clients see it.</summary>
public sealed record PolicyView(string Name, string Algorithm, int Limit, int WindowSeconds, IReadOnlyList<string> Methods,
    IReadOnlyList<string> Paths, string Audience, string OnOutage, bool Degraded);

public static class RateLimitApi
{
    public static IEndpointRouteBuilder MapRateLimitApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/ratelimit").WithTags("RateLimit");

        api.MapGet("policies", GetPolicies)
            .WithName("ListRateLimitPolicies")
            .WithSummary("The gateway's rate-limit policies in the order they are matched, and whether each is running on its outage fallback.");

        api.MapWiringEndpoint("", "ratelimit");
        return app;
    }

    public static Ok<PolicyView[]> GetPolicies(PolicyLimiters policies) =>
        TypedResults.Ok(policies.All.Select(p => new PolicyView(
            p.Policy.Name, p.Policy.Algorithm.ToString(), p.Policy.Limit, p.Policy.WindowSeconds,
            p.Policy.Methods, p.Policy.Paths, p.Policy.Audience.ToString(), p.Policy.OnOutage.ToString(), p.Limiter.IsDegraded)).ToArray());
}
