namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Wraps a registered service in a decorator that receives the registered instance: one way to do it, for every decorator here.</summary>
public static class ServiceDecoration
{
    /// <summary>Replaces the last registration of <typeparamref name="TService"/> by <paramref name="decorate"/> applied to it (a singleton).</summary>
    public static IServiceCollection Decorate<TService>(this IServiceCollection services, Func<IServiceProvider, TService, TService> decorate)
        where TService : class
    {
        var registered = services.Last(d => d.ServiceType == typeof(TService));
        services.Remove(registered);
        services.AddSingleton(sp => decorate(sp,
            registered.ImplementationInstance as TService
                ?? registered.ImplementationFactory?.Invoke(sp) as TService
                ?? (TService)ActivatorUtilities.CreateInstance(sp, registered.ImplementationType!)));
        return services;
    }
}
