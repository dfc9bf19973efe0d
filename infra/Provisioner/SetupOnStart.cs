using Npgsql;
using ShopReference.Hosting;

namespace ShopReference.Provisioner;

/// <summary>Whether the roles and databases exist yet.</summary>
public sealed class SetupState
{
    private volatile bool _done;
    public bool Done => _done;
    public void Finish() => _done = true;
}

/// <summary>
/// Reads <c>ConnectionStrings:postgres</c> (the superuser's) and <c>Databases:{n}:{Database,Role,Password,Replication}</c>,
/// and provisions until it succeeds: on a deploy PostgreSQL may start after this does.
/// </summary>
public sealed class SetupOnStart(IConfiguration configuration, SetupState state, ILogger<SetupOnStart> logger) : BackgroundService
{
    public static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var server = configuration.GetConnectionString("postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:postgres (the superuser's connection string) is required.");
        var databases = configuration.GetSection("Databases").Get<List<DatabaseGrant>>() ?? [];
        if (databases.Count == 0)
        {
            throw new InvalidOperationException("Databases:0:Database, :Role and :Password are required: nothing to provision.");
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PostgresProvisioner.ProvisionAsync(server, databases, stoppingToken);
                state.Finish();
                logger.LogInformation("Provisioned {Databases}.", string.Join(", ", databases.Select(d => $"{d.Database} (owner {d.Role})")));
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning("PostgreSQL cannot be provisioned yet ({Message}); retrying in {Seconds} s.", ex.Message, RetryInterval.TotalSeconds);
                await Task.Delay(RetryInterval, stoppingToken);
            }
        }
    }
}

public static class DatabaseSetupExtensions
{
    /// <summary>The setup worker and its state, as the <c>postgres-setup</c> project runs them (and its test hosts them).</summary>
    public static IServiceCollection AddDatabaseSetup(this IServiceCollection services) =>
        services.AddSingleton<SetupState>().AddHostedService<SetupOnStart>();
}
