using Microsoft.AspNetCore.Builder;
using IServer = Microsoft.AspNetCore.Hosting.Server.IServer;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ShopReference.Valkey.Discovery;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Which replica answered, and where each replica can be reached. Every response of a service carries
/// <c>X-Replica</c>: the replica's name as the dashboard shows it (the orchestrator's <c>service.instance.id</c>), or a
/// random name elsewhere; never a host name or process id. With <c>Discovery:AnnounceReplica</c> (the AppHost sets it in
/// run mode) the replica also announces its own address in the <see cref="ReplicaRegistry"/>, for the gateway.
/// </summary>
public static class Replicas
{
    public const string Header = "X-Replica";

    public static string Name { get; } = DashboardName() ?? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));

    /// <param name="servicePrefix">The service's key prefix: the registry is <c>{prefix}:replicas</c>.</param>
    public static TBuilder AddReplicaAnnouncer<TBuilder>(this TBuilder builder, string servicePrefix) where TBuilder : IHostApplicationBuilder
    {
        if (builder.Configuration.GetValue<bool>("Discovery:AnnounceReplica"))
        {
            builder.Services.AddHostedService(sp => new ReplicaAnnouncer(servicePrefix, sp.GetRequiredService<IServer>(),
                sp.GetRequiredService<IHostApplicationLifetime>(), new ReplicaRegistry(sp.GetRequiredService<IConnectionMultiplexer>()),
                sp.GetRequiredService<ILogger<ReplicaAnnouncer>>()));
        }
        return builder;
    }

    public static WebApplication UseReplicaHeader(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            context.Response.Headers[Header] = Name;
            return next(context);
        });
        return app;
    }

    /// <summary><c>{service}-{instance id}</c>, as the dashboard lists a replica, from what the orchestrator gives it.</summary>
    private static string? DashboardName()
    {
        var service = Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME");
        var instance = Environment.GetEnvironmentVariable("OTEL_RESOURCE_ATTRIBUTES")?.Split(',').Select(pair => pair.Split('=', 2))
            .FirstOrDefault(pair => pair.Length == 2 && pair[0].Trim() == "service.instance.id")?[1].Trim();
        return string.IsNullOrEmpty(service) || string.IsNullOrEmpty(instance) ? null : $"{service}-{instance}";
    }
}

/// <summary>Announces this replica's address every heartbeat while it runs, and withdraws it when it stops.</summary>
public sealed class ReplicaAnnouncer(string servicePrefix, IServer server, IHostApplicationLifetime lifetime, ReplicaRegistry registry,
    ILogger<ReplicaAnnouncer> logger) : BackgroundService
{
    private readonly string _key = ReplicaRegistry.Key(servicePrefix);
    private string? _address;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The address is known once the server listens: the port the orchestrator gave this replica.
        var started = new TaskCompletionSource();
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            try { await started.Task; } catch (OperationCanceledException) { return; }
        }
        _address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault(a => a.StartsWith("http://", StringComparison.Ordinal));
        if (_address is null)
        {
            logger.LogWarning("No http address to announce; the gateway reaches this replica through service discovery only.");
            return;
        }
        using var timer = new PeriodicTimer(ReplicaRegistry.Heartbeat);
        try
        {
            do
            {
                try
                {
                    await registry.AnnounceAsync(_key, _address);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    logger.LogDebug(ex, "Could not announce {Address}", _address); // Valkey is down or busy: expected, and said by its own health check
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // Whatever failed, the next heartbeat tries again: a background loop must never stop the service
                    // (an unhandled exception stops the host). The gateway keeps the replicas it saw meanwhile.
                    logger.LogWarning(ex, "Could not announce {Address}", _address);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_address is null) return;
        try
        {
            await registry.WithdrawAsync(_key, _address);
        }
        catch (Exception ex)
        {
            logger.LogDebug(ex, "Could not withdraw {Address}; it drops out after {FreshFor}", _address, ReplicaRegistry.FreshFor);
        }
    }
}
