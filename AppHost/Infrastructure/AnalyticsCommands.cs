using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard commands on analytics, calling its operator routes (<c>/admin/…</c>, permission <c>operator</c>, which the
/// gateway does not expose) with an operator's token:
/// replay the last events (they come back as duplicates and are skipped: exactly-once, visible) and rebuild the
/// leaderboards from PostgreSQL (after Valkey lost them).
/// </summary>
public static class AnalyticsCommands
{
    private const int ReplayCount = 100;

    public static IResourceBuilder<ProjectResource> WithAnalyticsCommands(
        this IResourceBuilder<ProjectResource> analytics, IResourceBuilder<ProjectResource> gateway, ShopAuth auth)
    {
        if (!analytics.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return analytics;
        }
        analytics.WithCommand("replay-events", $"Replay the last {ReplayCount} events", context => PostAsync(context, analytics, gateway, auth,
            $"/admin/events/replay?count={ReplayCount}",
            body => $"Re-sent {body.GetProperty("events").GetInt32()} events. Each keeps its id, so each is skipped as a duplicate: watch shopreference.analytics.events.duplicates rise and the leaderboards stay put."),
            new CommandOptions
            {
                Description = $"Appends the last {ReplayCount} stream entries again, unchanged.",
                IconName = "ArrowRepeatAll",
                UpdateState = CommandState.EnabledWhenHealthy,
            });
        analytics.WithCommand("rebuild-leaderboards", "Rebuild leaderboards from PostgreSQL", context => PostAsync(context, analytics, gateway, auth,
            "/admin/leaderboards/rebuild",
            body => $"Rebuilt {body.GetProperty("buckets").GetInt32()} hourly buckets from analyticsdb (each the larger of Valkey's and PostgreSQL's counts)."),
            new CommandOptions
            {
                Description = "Restores the last 8 days of hourly leaderboard buckets from the rollups in analyticsdb.",
                IconName = "DatabaseArrowUp",
                UpdateState = CommandState.EnabledWhenHealthy,
            });
        return analytics;
    }

    private static async Task<ExecuteCommandResult> PostAsync(ExecuteCommandContext context, IResourceBuilder<ProjectResource> analytics,
        IResourceBuilder<ProjectResource> gateway, ShopAuth auth, string path, Func<System.Text.Json.JsonElement, string> describe)
    {
        using var http = new HttpClient { BaseAddress = new Uri(analytics.GetEndpoint("http").Url), Timeout = TimeSpan.FromMinutes(1) };
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await auth.OperatorTokenAsync(gateway, context.CancellationToken));
        using var response = await http.SendAsync(request, context.CancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            return CommandResults.Failure($"analytics answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(context.CancellationToken)}");
        }
        var summary = describe(await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(context.CancellationToken));
        context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(analytics.Resource).LogInformation("{Summary}", summary);
        return CommandResults.Success(summary);
    }
}
