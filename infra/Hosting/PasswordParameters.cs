namespace ShopReference.Hosting;

/// <summary>Secret parameters generated once per machine.</summary>
public static class PasswordParameters
{
    /// <summary>
    /// A secret parameter the user can set (<c>Parameters:{name}</c>); otherwise generated once and kept in the
    /// AppHost's user secrets. Letters and digits only, so it fits connection strings and config files unescaped.
    /// </summary>
    /// <param name="builder">The AppHost's builder.</param>
    /// <param name="name">The parameter's name.</param>
    /// <param name="length">Its length when generated.</param>
    /// <param name="description">What it is for, shown on the parameter in the dashboard.</param>
    public static ParameterResource AddPasswordParameter(this IDistributedApplicationBuilder builder, string name, string description, int length = 22)
    {
        var parameter = ParameterResourceBuilderExtensions.CreateGeneratedParameter(builder, name, secret: true,
            new GenerateParameterDefault { MinLength = length, Special = false });
        builder.AddResource(parameter).WithDescription(description);
        return parameter;
    }
}
