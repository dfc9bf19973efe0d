using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>One started app shared by every test class in the "app" collection (a start takes several seconds).</summary>
public sealed class ShopAppFixture : IAsyncLifetime
{
    private ShopApp? _shop;

    public ShopApp Shop => _shop ?? throw new InvalidOperationException("The app has not started.");

    public async ValueTask InitializeAsync() => _shop = await ShopApp.StartAsync(TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_shop is not null)
        {
            await _shop.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ShopAppCollection : ICollectionFixture<ShopAppFixture>
{
    public const string Name = "app";
}
