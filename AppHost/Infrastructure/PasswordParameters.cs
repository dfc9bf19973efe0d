namespace ShopReference.AppHost.Infrastructure;

internal static class PasswordParameters
{
    /// <summary>
    /// A secret parameter the user can set (<c>Parameters:{name}</c>); otherwise generated once and kept in the
    /// AppHost's user secrets. Letters and digits only, so it fits connection strings and config files unescaped.
    /// </summary>
    public static ParameterResource AddPasswordParameter(this IDistributedApplicationBuilder builder, string name)
    {
        var parameter = ParameterResourceBuilderExtensions.CreateDefaultPasswordParameter(builder, name, special: false);
        builder.AddResource(parameter);
        return parameter;
    }
}
