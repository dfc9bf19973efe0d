using System.Diagnostics;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using ShopReference.RateLimit.Auth;
using ShopReference.Valkey.RateLimiting;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>
/// The gateway's limiter in front of every <c>/api</c> route: resolves the client, applies the first matching policy,
/// and stamps every response with the IETF <c>RateLimit-Policy</c> and <c>RateLimit</c> fields (not only the 429s).
/// A rejection is 429 ProblemDetails with an honest <c>Retry-After</c>; a fail-closed policy without Valkey is 503.
/// A refused credential is 401 and counts against the client's address (<see cref="CredentialFailures"/>); the
/// identity it settles on is what the gateway forwards as the client context.
/// </summary>
public sealed class RateLimitMiddleware(
    RequestDelegate next, PolicyLimiters policies, ClientIdentityResolver clients, CredentialFailures failures,
    RateLimitMetrics metrics, IProblemDetailsService problems)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments("/api"))
        {
            await next(context);
            return;
        }

        // A valid credential is always honoured, whatever its address has done: clients behind one ingress or NAT share
        // an address, and ten bad keys from anyone there must not lock every partner out. Only refused credentials count.
        var bearer = ClientIdentityResolver.PresentsBearer(context)
            ? await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme)
            : null;
        var (client, status, problem) = clients.Resolve(context, bearer);
        if (client is not { } identity)
        {
            if (status == StatusCodes.Status401Unauthorized)
            {
                if (await failures.FailedAsync(clients.AddressOf(context)) is { } blocked)
                {
                    await WriteProblemAsync(context, StatusCodes.Status429TooManyRequests,
                        $"Too many refused credentials from this address; try again in {Seconds(blocked)} s.", blocked);
                    return;
                }
                context.Response.Headers.WWWAuthenticate = ClientIdentityResolver.PresentsBearer(context)
                    ? "Bearer error=\"invalid_token\"" : $"ApiKey header=\"{ClientIdentityResolver.ApiKeyHeader}\"";
            }
            await WriteProblemAsync(context, status, problem!, retryAfter: null);
            return;
        }
        context.Features.Set(new GatewayClient(identity));
        var policy = policies.Match(context.Request, identity)!; // the last policy matches every request

        var started = Stopwatch.GetTimestamp();
        using var lease = await policy.Limiter.AcquireAsync(identity.Partition, 1, context.RequestAborted);
        var unavailable = lease.TryGetMetadata(ResilientPartitionedRateLimiter<string>.Unavailable, out var down) && down;
        var outcome = unavailable ? "unavailable" : lease.IsAcquired ? "allowed" : "rejected";
        metrics.Decision(policy.Policy.Name, outcome, policy.Limiter.IsDegraded, Stopwatch.GetElapsedTime(started).TotalMilliseconds);

        var headers = context.Response.Headers;
        headers["RateLimit-Policy"] = policy.PolicyHeader;
        var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : (TimeSpan?)null;
        if (!unavailable)
        {
            headers["RateLimit"] = RateLimitField(policy, lease, retryAfter);
        }

        if (unavailable)
        {
            await WriteProblemAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"The rate limiter for '{policy.Policy.Name}' cannot reach its store and this policy fails closed.", retryAfter);
            return;
        }
        if (!lease.IsAcquired)
        {
            await WriteProblemAsync(context, StatusCodes.Status429TooManyRequests,
                $"The '{policy.Policy.Name}' quota of {policy.Policy.Limit} requests per {policy.Policy.WindowSeconds} s is used up.", retryAfter);
            return;
        }
        await next(context);
    }

    // "name";r=remaining;t=seconds until the quota regains permits. An in-process fallback lease carries no
    // remaining count, so it reports 0 when rejected and the full quota otherwise.
    private static string RateLimitField(PolicyLimiter policy, RateLimitLease lease, TimeSpan? retryAfter)
    {
        var remaining = lease.TryGetMetadata(RateLimitMetadata.Remaining, out var r) ? r : lease.IsAcquired ? policy.Policy.Limit - 1 : 0;
        var reset = lease.TryGetMetadata(RateLimitMetadata.ResetAfter, out var t) ? t
            : retryAfter ?? TimeSpan.FromSeconds(policy.Policy.WindowSeconds);
        return string.Create(CultureInfo.InvariantCulture, $"\"{policy.Policy.Name}\";r={remaining};t={Seconds(reset)}");
    }

    internal static long Seconds(TimeSpan value) => (long)Math.Ceiling(value.TotalSeconds);

    private async Task WriteProblemAsync(HttpContext context, int status, string detail, TimeSpan? retryAfter)
    {
        context.Response.StatusCode = status;
        if (retryAfter is { } wait)
        {
            // Rounded up and at least 1 s, so a client that waits exactly this long is admitted.
            context.Response.Headers.RetryAfter = Math.Max(1, Seconds(wait)).ToString(CultureInfo.InvariantCulture);
        }
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = { Status = status, Detail = detail },
        });
    }
}

/// <summary>The identity the gateway settled on for a request, for the client context it forwards.</summary>
public sealed record GatewayClient(ClientIdentity Identity);
