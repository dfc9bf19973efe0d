using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using StackExchange.Redis;

namespace ShopReference.Analytics.Workers;

/// <summary>Runs this instance's member of the consumer group, and samples the group's lag and pending count for the meter.</summary>
public sealed class ConsumerWorker(EventConsumer consumer, IConnectionMultiplexer multiplexer, AnalyticsMetrics metrics, ILogger<ConsumerWorker> logger) : BackgroundService
{
    private static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(5);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(consumer.RunAsync(stoppingToken), SampleAsync(stoppingToken));

    private async Task SampleAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(SampleInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                var group = (await multiplexer.GetDatabase().StreamGroupInfoAsync(EventStream.Key))
                    .FirstOrDefault(g => g.Name == EventStream.ConsumerGroup);
                metrics.Sampled(group.Lag ?? -1, group.PendingMessageCount);
            }
            catch (Exception ex) when (ShopReference.Valkey.Resilience.ValkeyFailures.IsUnavailable(ex))
            {
                logger.LogDebug(ex, "Could not sample the consumer group.");
            }
        }
    }
}
