using Npgsql;
using ShopReference.Hosting;

namespace ShopReference.Provisioner;

/// <summary>
/// One provisioning run: retried until PostgreSQL answers, since on a deploy it may start after this does, and given up
/// after <c>Provisioning:Timeout</c> (10 minutes unless set) with a non-zero exit code, so a server that never answers
/// shows as a failed resource instead of a worker waiting forever.
/// </summary>
public static class DatabaseSetup
{
    public static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>0 once every role and database is provisioned; 1 when the configuration is wrong or time ran out.</summary>
    public static async Task<int> RunAsync(IConfiguration configuration, ILogger logger, CancellationToken cancellationToken)
    {
        string server;
        IReadOnlyList<DatabaseGrant> databases;
        try
        {
            (server, databases) = PostgresProvisioner.ReadGrants(configuration);
        }
        catch (InvalidOperationException ex)
        {
            logger.LogError("Nothing provisioned: {Message}", ex.Message);
            return 1;
        }
        var timeout = configuration.GetValue("Provisioning:Timeout", DefaultTimeout);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var lastError = "";
        while (!deadline.IsCancellationRequested)
        {
            try
            {
                await PostgresProvisioner.ProvisionAsync(server, databases, deadline.Token);
                logger.LogInformation("Provisioned {Databases}.", string.Join(", ", databases.Select(d => $"{d.Database} (owner {d.Role})")));
                return 0;
            }
            catch (InvalidOperationException ex)
            {
                logger.LogError("Nothing provisioned: {Message}", ex.Message); // a bad name or password: retrying cannot help
                return 1;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException && !deadline.IsCancellationRequested)
            {
                lastError = ex.Message;
                logger.LogWarning("PostgreSQL cannot be provisioned yet ({Message}); retrying in {Seconds} s.", ex.Message, RetryInterval.TotalSeconds);
                await Task.Delay(RetryInterval, deadline.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // The deadline passed during an attempt: the loop ends with the error before it.
            }
        }
        cancellationToken.ThrowIfCancellationRequested(); // stopped, not timed out
        logger.LogError("PostgreSQL could not be provisioned within {Timeout}: {Message}", timeout, lastError);
        return 1;
    }
}
