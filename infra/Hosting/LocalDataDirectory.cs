namespace ShopReference.Hosting;

/// <summary>
/// Where Local mode keeps server data: <c>Infrastructure:DataDirectory</c>, else <c>.localdata/</c> beside the
/// AppHost (git-ignored), so a second run finds the data of the first.
/// </summary>
public static class LocalDataDirectory
{
    /// <summary>The data folder of the local server <paramref name="server"/>.</summary>
    public static string For(IDistributedApplicationBuilder builder, string server)
    {
        var root = builder.Configuration["Infrastructure:DataDirectory"];
        root = string.IsNullOrWhiteSpace(root)
            ? Path.Combine(builder.AppHostDirectory, ".localdata")
            : Path.GetFullPath(root, builder.AppHostDirectory);
        return Path.Combine(root, server);
    }
}
