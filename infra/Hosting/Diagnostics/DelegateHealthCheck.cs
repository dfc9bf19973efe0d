using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ShopReference.Hosting;

/// <summary>A health check that is healthy when a protocol-level probe (PING, select 1) answers.</summary>
internal sealed class DelegateHealthCheck(Func<CancellationToken, Task<bool>> probe) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return await probe(cancellationToken) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("The server did not answer.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy(ex.Message, ex);
        }
    }
}
