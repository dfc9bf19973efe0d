namespace ShopReference.Hosting;

/// <summary>When the dashboard's commands can run.</summary>
public static class CommandState
{
    /// <summary>Traffic, report and operator commands make sense only against a resource that is up.</summary>
    public static ResourceCommandState EnabledWhenHealthy(UpdateCommandStateContext context) =>
        context.ResourceSnapshot.HealthStatus == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy
            ? ResourceCommandState.Enabled
            : ResourceCommandState.Disabled;
}
