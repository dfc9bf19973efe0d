using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The one way a service binds its settings: a configuration section, checked by the type's data annotations (and
/// <see cref="System.ComponentModel.DataAnnotations.IValidatableObject"/> for rules across fields) when the host
/// starts, so a bad value stops the service at start with the setting's name, not at the first request that needs it.
/// </summary>
public static class ValidatedOptions
{
    public static OptionsBuilder<T> AddValidatedOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] T>(
        this IHostApplicationBuilder builder, string section) where T : class =>
        builder.Services.AddOptions<T>().BindConfiguration(section).ValidateDataAnnotations().ValidateOnStart();
}
