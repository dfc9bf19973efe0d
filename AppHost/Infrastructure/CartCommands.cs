using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Dashboard command on cart-session: count the live cart sessions. Sessions expire by themselves (sliding idle
/// timeout), so the live ones are exactly the session keys that exist; the service counts them with <c>SCAN</c> on its
/// operator route, called with an operator's token.
/// </summary>
public static class CartCommands
{
    public static IResourceBuilder<ProjectResource> WithLiveSessionsCommand(
        this IResourceBuilder<ProjectResource> cart, IResourceBuilder<ProjectResource> gateway, ShopAuth auth)
    {
        if (!cart.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return cart;
        }
        return cart.WithCommand("live-sessions", "Count live sessions", async context =>
        {
            using var http = new HttpClient { BaseAddress = new Uri(cart.GetEndpoint("http").Url), Timeout = TimeSpan.FromMinutes(1) };
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/sessions");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await auth.OperatorTokenAsync(gateway, context.CancellationToken));
            using var response = await http.SendAsync(request, context.CancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return CommandResults.Failure($"cart-session answered {(int)response.StatusCode}.");
            }
            var body = await response.Content.ReadFromJsonAsync<JsonElement>(context.CancellationToken);
            var summary = $"{body.GetProperty("sessions").GetInt64()} live cart sessions ({body.GetProperty("withItems").GetInt64()} with items in the cart).";
            context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(cart.Resource).LogInformation("{Summary}", summary);
            return CommandResults.Success(summary);
        }, new CommandOptions
        {
            Description = "Counts the cart:session:* keys in Valkey with SCAN; each is a session that has not idled out.",
            IconName = "People",
            UpdateState = CommandState.EnabledWhenHealthy,
        });
    }
}
