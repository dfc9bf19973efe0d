using ShopReference.Analytics.Data;

namespace ShopReference.Analytics.Workers;

/// <summary>Rolls changed hours up to PostgreSQL on an interval (<c>Analytics:RollupInterval</c>, default 15 s).</summary>
public sealed class RollupWorker(Rollups rollups, AnalyticsMetrics metrics, IConfiguration configuration, ILogger<RollupWorker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await rollups.Completion.WaitAsync(stoppingToken);
        using var timer = new PeriodicTimer(configuration.GetValue("Analytics:RollupInterval", TimeSpan.FromSeconds(15)));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                metrics.RolledUp(await rollups.RollUpAsync(stoppingToken));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Nothing is lost: the hours stay marked dirty and the next tick writes them.
                logger.LogWarning(ex, "Analytics rollup failed; it runs again in the next interval.");
            }
        }
    }
}
