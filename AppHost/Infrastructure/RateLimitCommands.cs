using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard command on the gateway: burst one client past its limit so a user can watch 429s, the
/// <c>RateLimit</c> fields and the <c>ShopReference.RateLimit</c> meter react. The burst uses the demo API client
/// <c>dashboard</c> (key generated per AppHost, only its hash reaches the gateway), so it never locks the user's own
/// browser out.
/// </summary>
public static class RateLimitCommands
{
    /// <summary>
    /// <c>Gateway:TrustedProxies</c> (addresses or CIDR networks) becomes the gateway's <c>RateLimiting:TrustedProxies</c>:
    /// the proxies whose <c>X-Forwarded-For</c>/<c>-Proto</c> it believes (an ingress in front of it, or a test). A
    /// deployment always has an ingress, and without it every visitor would share the ingress's address and quotas, so
    /// publish mode asks for it as the required parameter <c>gateway-trusted-proxies</c> unless it is configured.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithTrustedProxies(this IResourceBuilder<ProjectResource> gateway, Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        var proxies = configuration.GetSection("Gateway:TrustedProxies").GetChildren().Select(c => c.Value).OfType<string>().ToArray();
        if (proxies.Length == 0 && gateway.ApplicationBuilder.ExecutionContext.IsPublishMode)
        {
            var ingress = gateway.ApplicationBuilder.AddParameter("gateway-trusted-proxies")
                .WithDescription("The ingress in front of the gateway, whose X-Forwarded-For it believes: addresses or CIDR networks, " +
                    "comma-separated (Azure Container Apps: the environment's infrastructure subnet, docs/deploy.md).");
            return gateway.WithEnvironment("RateLimiting__TrustedProxies__0", ingress);
        }
        for (var i = 0; i < proxies.Length; i++)
        {
            gateway.WithEnvironment($"RateLimiting__TrustedProxies__{i}", proxies[i]);
        }
        return gateway;
    }

    private const int BurstSize = 350;
    private const int Quota = 300; // the partner-read policy admits 300 per minute

    public static IResourceBuilder<ProjectResource> WithRateLimitBurstCommand(this IResourceBuilder<ProjectResource> gateway, ShopAuth auth)
    {
        if (!gateway.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return gateway;
        }
        return gateway.WithCommand("burst-client", "Burst a client past its limit", async context =>
        {
            var key = await auth.DemoKey.GetValueAsync(context.CancellationToken) ?? "";
            using var http = new HttpClient { BaseAddress = new Uri(gateway.GetEndpoint("http").Url) };
            // The first request of the burst asks what is left: a burst only shows "exactly the quota" on a full one.
            if (await GatewayQuota.LeftAsync(http, key, context.CancellationToken) is not { } quota)
            {
                return CommandResults.Failure("The gateway did not answer with a RateLimit field.");
            }
            if (quota.Remaining < Quota - 1)
            {
                return CommandResults.Failure($"The demo client's quota is not full ({quota.Remaining} of {Quota} left, the window " +
                    $"slides): run the burst again in {quota.ResetSeconds} s, when the last burst has left the window.");
            }
            var counts = new int[3]; // admitted, rejected with 429, other
            counts[0] = 1;
            await Parallel.ForAsync(1, BurstSize, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = context.CancellationToken }, async (_, ct) =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/api/ratelimit/policies");
                request.Headers.Add("X-Api-Key", key);
                using var response = await http.SendAsync(request, ct);
                Interlocked.Increment(ref counts[response.StatusCode switch
                {
                    HttpStatusCode.OK => 0,
                    HttpStatusCode.TooManyRequests => 1,
                    _ => 2,
                }]);
            });
            var summary = $"{BurstSize} requests as API client 'dashboard' (policy partner-read): {counts[0]} admitted, {counts[1]} rejected with 429, {counts[2]} other.";
            context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(gateway.Resource).LogInformation("{Summary}", summary);
            return CommandResults.Success(summary);
        }, new CommandOptions
        {
            Description = "Sends 350 requests as one API client; its policy admits 300 per minute.",
            IconName = "Flash",
            UpdateState = CommandState.EnabledWhenHealthy,
        });
    }
}
