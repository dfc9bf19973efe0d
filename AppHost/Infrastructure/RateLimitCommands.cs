using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard command on the gateway: burst one client past its limit so a user can watch 429s, the
/// <c>RateLimit</c> fields and the <c>ShopReference.RateLimit</c> meter react. The burst uses a demo API client
/// (key generated per AppHost, only its hash reaches the gateway), so it never locks the user's own browser out.
/// </summary>
public static class RateLimitCommands
{
    private const int BurstSize = 350; // the partner-read policy admits 300 per minute

    public static IResourceBuilder<ProjectResource> WithRateLimitBurstCommand(this IResourceBuilder<ProjectResource> gateway)
    {
        var builder = gateway.ApplicationBuilder;
        var demoKey = builder.AddPasswordParameter("ratelimit-demo-key");
        gateway.WithAnnotation(new DemoApiKeyAnnotation(demoKey));
        if (!builder.ExecutionContext.IsRunMode)
        {
            return gateway; // a deployment configures its own API clients
        }

        // Two demo clients with quotas of their own, so the burst and the catalog's stampede command never starve each other.
        gateway.WithEnvironment(async context =>
        {
            var key = await demoKey.GetValueAsync(context.CancellationToken) ?? "";
            context.EnvironmentVariables["RateLimiting__ApiKeys__dashboard"] = Sha256Hex(key);
            context.EnvironmentVariables["RateLimiting__ApiKeys__dashboard-stampede"] = Sha256Hex(DemoApiKeyAnnotation.StampedeKey(key));
        });

        return gateway.WithCommand("burst-client", "Burst a client past its limit", async context =>
        {
            var key = await demoKey.GetValueAsync(context.CancellationToken) ?? "";
            using var http = new HttpClient { BaseAddress = new Uri(gateway.GetEndpoint("http").Url) };
            var counts = new int[3]; // admitted, rejected with 429, other
            await Parallel.ForAsync(0, BurstSize, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = context.CancellationToken }, async (_, ct) =>
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
            UpdateState = DemoApiKeyAnnotation.EnabledWhenHealthy,
        });
    }

    private static string Sha256Hex(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}
