using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>One started app shared by every test class in the "app" collection (a start takes several seconds).</summary>
public class ShopAppFixture : IAsyncLifetime
{
    private ShopApp? _shop;

    public ShopApp Shop => _shop ?? throw new InvalidOperationException("The app has not started.");

    /// <summary>Whether the app runs the Aspire dashboard too (the browser test).</summary>
    protected virtual bool Dashboard => false;

    public async ValueTask InitializeAsync() => _shop = await ShopApp.StartAsync(TestContext.Current.CancellationToken, dashboard: Dashboard);

    public async ValueTask DisposeAsync()
    {
        if (_shop is not null)
        {
            await _shop.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }
}
