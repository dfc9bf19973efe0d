namespace ShopReference.Hosting;

/// <summary>
/// Names a server's data volume in Containers mode: Aspire's per-AppHost name (<c>{app}-{hash}-{resource}-data</c>), so
/// two apps on one engine never share a volume; or <c>{Infrastructure:VolumePrefix}-{resource}-data</c>, which the
/// tests set to a fresh value per app (apps started from one AppHost would otherwise share it).
/// </summary>
public static class ContainerVolumes
{
    /// <summary>The named volume that keeps a container's data across runs, one per resource and AppHost.</summary>
    public static string DataVolume<T>(IResourceBuilder<T> resource) where T : IResource =>
        resource.ApplicationBuilder.Configuration["Infrastructure:VolumePrefix"] is { Length: > 0 } prefix
            ? $"{prefix}-{resource.Resource.Name}-data"
            : VolumeNameGenerator.Generate(resource, "data");
}
