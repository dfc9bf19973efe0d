using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ShopReference.Contracts.Events;

/// <summary>
/// Appends events off the request path. A request hands its event over with <see cref="Enqueue"/> and answers at once;
/// one loop sends whatever has queued since its last write, all of it in flight together (pipelined on the connection),
/// through <see cref="EventPublisher"/>. So a view costs a read a queue write instead of a Valkey round trip, and many
/// concurrent views cost Valkey one write of the socket instead of one each.
/// </summary>
/// <remarks>
/// No outage loses an event without counting it: every one handed over is appended or counted as dropped
/// (<c>shopreference.analytics.events.dropped</c>) — when Valkey is unreachable, as for a direct publish, and when the
/// queue is full because Valkey has fallen behind the reads (the queue is bounded, so memory is, and a read never waits
/// for analytics). A refusal that is not an outage (a permission, a wrong type) is a defect and is logged as an error.
/// At shutdown the loop sends what is still queued before the process ends.
/// </remarks>
public sealed class EventQueue : BackgroundService
{
    /// <summary>Events waiting for the loop; about 300 bytes each, so the bound is about 3 MB.</summary>
    public const int DefaultCapacity = 10_000;

    /// <summary>At most this many events in flight at once, so one write stays a reasonable size.</summary>
    public const int BatchSize = 256;

    private readonly Channel<AnalyticsEvent> _queue;
    private readonly EventPublisher _publisher;
    private readonly ILogger<EventQueue> _logger;

    public EventQueue(EventPublisher publisher, ILogger<EventQueue> logger, int capacity = DefaultCapacity)
    {
        _publisher = publisher;
        _logger = logger;
        _queue = Channel.CreateBounded<AnalyticsEvent>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: false when full, so the drop is ours to count
        });
    }

    /// <summary>Hands the event to the loop; false when it was dropped (and counted) because the queue is full or closed.</summary>
    public bool Enqueue(AnalyticsEvent analyticsEvent)
    {
        if (_queue.Writer.TryWrite(analyticsEvent))
        {
            return true;
        }
        _publisher.DropQueued(analyticsEvent);
        return false;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var reader = _queue.Reader;
        var batch = new List<Task>(BatchSize);
        // Not cancelled by stoppingToken: the loop ends when StopAsync closes the queue and it is empty (drained).
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (batch.Count < BatchSize && reader.TryRead(out var queued))
            {
                batch.Add(_publisher.PublishAsync(queued)); // never throws for an outage: it drops and counts
            }
            try
            {
                await Task.WhenAll(batch).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // A refusal that is not an outage (a permission, a wrong type) is a defect: say so loudly and go on.
                _logger.LogError(ex, "Appending {Count} analytics event(s) failed with an error that is not an outage.", batch.Count(t => t.IsFaulted));
            }
            batch.Clear();
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete(); // new events are dropped and counted from here; queued ones are still sent
        return base.StopAsync(cancellationToken);
    }
}

/// <summary>Registration of the publisher and the queue, for a service that records events from its request path.</summary>
public static class EventQueueRegistration
{
    /// <summary><see cref="EventPublisher"/>, and <see cref="EventQueue"/> as a singleton that runs as a hosted service.</summary>
    public static IServiceCollection AddEventQueue(this IServiceCollection services)
    {
        services.AddSingleton<EventPublisher>();
        services.AddSingleton(sp => new EventQueue(sp.GetRequiredService<EventPublisher>(), sp.GetRequiredService<ILogger<EventQueue>>()));
        services.AddHostedService(sp => sp.GetRequiredService<EventQueue>());
        return services;
    }
}
