namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// Where Local mode keeps server data: <c>Infrastructure:DataDirectory</c>, else <c>.localdata/</c> beside the
/// AppHost (git-ignored), so a second run finds the data of the first.
/// </summary>
public static class LocalDataDirectory
{
    public static string For(IDistributedApplicationBuilder builder, string server)
    {
        var root = builder.Configuration["Infrastructure:DataDirectory"];
        root = string.IsNullOrWhiteSpace(root)
            ? Path.Combine(builder.AppHostDirectory, ".localdata")
            : Path.GetFullPath(root, builder.AppHostDirectory);
        return Path.Combine(root, server);
    }
}
