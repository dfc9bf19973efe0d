
namespace ShopReference.Hosting;

/// <summary>How Valkey and PostgreSQL are run: <c>Infrastructure:Mode</c> = Auto | Containers | Local.</summary>
public enum InfrastructureMode
{
/// <summary>Containers when an engine answers, else local processes when the binaries are found.</summary>
    Auto,
/// <summary>Container images (what a deployment runs).</summary>
    Containers,
/// <summary>Local <c>valkey-server</c>/<c>redis-server</c> and PostgreSQL processes, for machines without a container engine.</summary>
    Local,
}

/// <summary>
/// Chooses the backend once, before the model is built: a container resource without an engine would sit in
/// RuntimeUnhealthy forever and every dependant would wait on it, so Auto probes the runtime first and fails at
/// once, naming what to install, when neither backend can run.
/// </summary>
public static class InfrastructureModeResolver
{
    /// <summary>Reads <c>Infrastructure:Mode</c>; in publish mode always <see cref="InfrastructureMode.Containers"/>.</summary>
    public static InfrastructureMode Resolve(IDistributedApplicationBuilder builder)
    {
        if (builder.ExecutionContext.IsPublishMode)
        {
            return InfrastructureMode.Containers; // azd and the manifest can only deploy containers
        }

        var configured = builder.Configuration["Infrastructure:Mode"];
        var mode = string.IsNullOrWhiteSpace(configured) ? InfrastructureMode.Auto
            : Enum.TryParse<InfrastructureMode>(configured, ignoreCase: true, out var parsed) ? parsed
            : throw new DistributedApplicationException(
                $"Infrastructure:Mode '{configured}' is not one of Auto, Containers, Local.");

        if (mode != InfrastructureMode.Auto)
        {
            return mode;
        }
        if (ContainerRuntimeAnswers(builder.Configuration["ASPIRE_CONTAINER_RUNTIME"] ?? "docker"))
        {
            return InfrastructureMode.Containers;
        }
        if (ServerBinaries.FindValkeyServer() is not null && ServerBinaries.FindPostgresBinDirectory() is not null)
        {
            return InfrastructureMode.Local;
        }
        throw new DistributedApplicationException($"No container runtime answered and no local servers were found. {ServerBinaries.InstallHint}");
    }

    // 'docker info' asks the engine, not the client: it fails fast when only the client is installed.
    private static bool ContainerRuntimeAnswers(string runtime)
    {
        if (ServerBinaries.FindOnPath(runtime) is null)
        {
            return false;
        }
        try
        {
            var (exitCode, _) = ProcessRunner.RunAsync(runtime, ["info", "--format", "{{.ServerVersion}}"], null,
                TimeSpan.FromSeconds(10), CancellationToken.None).GetAwaiter().GetResult();
            return exitCode == 0;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
