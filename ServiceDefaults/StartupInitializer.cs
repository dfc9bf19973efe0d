using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Work a service must finish before it takes traffic (a schema, a seed, a consumer group). It runs once in the
/// background at start; until it has succeeded its health check keeps <c>/health</c> unhealthy, so the orchestrator
/// and the gateway route nothing to a half-ready instance, while <c>/alive</c> stays green. A failure is logged and
/// reported by the check, never swallowed.
/// </summary>
public abstract class StartupInitializer(ILogger logger) : BackgroundService, IHealthCheck
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the work has succeeded (other workers wait on it).</summary>
    public Task Completion => _done.Task;

    /// <summary>A short name of the work, for the health report and the log ("Creating the orders schema").</summary>
    protected abstract string Work { get; }

    /// <summary>The work itself; it must be safe to run again and from several instances at once.</summary>
    public abstract Task InitializeAsync(CancellationToken cancellationToken);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_done.Task.IsCompletedSuccessfully ? HealthCheckResult.Healthy()
            : _done.Task.IsFaulted ? HealthCheckResult.Unhealthy($"{Work} failed.", _done.Task.Exception)
            : HealthCheckResult.Unhealthy($"{Work}: running."));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await InitializeAsync(stoppingToken);
            _done.TrySetResult();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError(ex, "{Work} failed.", Work);
            _done.TrySetException(ex);
        }
    }
}

public static class StartupInitializerExtensions
{
    /// <summary>Registers <typeparamref name="T"/> once: as a singleton, as the hosted service that runs it, and as a readiness check.</summary>
    public static IHostApplicationBuilder AddStartupInitializer<T>(this IHostApplicationBuilder builder, string name) where T : StartupInitializer
    {
        builder.Services.AddSingleton<T>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<T>());
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(name, sp => sp.GetRequiredService<T>(), failureStatus: null, tags: null));
        return builder;
    }
}
