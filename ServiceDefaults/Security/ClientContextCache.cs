using Microsoft.Extensions.Caching.Memory;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Client contexts already validated, by their exact token text, until the token expires. The gateway reuses one token
/// per visitor for a minute, so a busy visitor's requests cost one signature check a minute instead of one each. Only a
/// token that validated is kept (a forged one is checked, and refused, every time), an entry never outlives the
/// token's own <c>exp</c>, and the number of entries is bounded, so many distinct tokens cannot grow memory.
/// </summary>
public sealed class ClientContextCache : IDisposable
{
    /// <summary>About 20 minutes of distinct visitors at 10 a second; a visitor beyond it is simply validated again.</summary>
    public const int Capacity = 10_000;

    private readonly MemoryCache _validated = new(new MemoryCacheOptions { SizeLimit = Capacity });

    public bool TryGet(string token, out ClientContext? context) => _validated.TryGetValue(token, out context);

    public void Add(string token, ClientContext context, DateTimeOffset expires) =>
        _validated.Set(token, context, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpiration = expires });

    public void Dispose() => _validated.Dispose();
}
