using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace ShopReference.Shoppers;

/// <summary>What the simulated shoppers do, and how much of it.</summary>
public sealed record SimulationOptions
{
    public required Uri Gateway { get; init; }
    public int Shoppers { get; init; } = 8;
    public TimeSpan Duration { get; init; } = TimeSpan.FromMinutes(1);
    public int Products { get; init; } = 1_000;
    public int Seed { get; init; } = Environment.TickCount;

    /// <summary>
    /// Each shopper speaks as a client address of its own (<c>X-Forwarded-For</c>), which the gateway believes only from
    /// a trusted proxy: then each has its own quotas and counts as its own visitor.
    /// </summary>
    public bool DistinctAddresses { get; init; }

    /// <summary>
    /// The key of a gateway client with the permission <c>shoppers</c> (the dashboard's simulation): each shopper presents
    /// it with <c>X-Shopper: n</c>, and the gateway counts it as an anonymous visitor of its own (at most 64). The other way
    /// to make distinct shoppers, for a gateway that trusts this machine as a proxy, is <see cref="DistinctAddresses"/>.
    /// </summary>
    public string? ShopperKey { get; init; }

    /// <summary>
    /// Expires a hot product (the host's operator call); with it, every <see cref="StampedeInterval"/> the hottest product
    /// is expired and <see cref="StampedeReaders"/> shoppers read it at once, so the herd protection has a herd to hold,
    /// and right after, one of those shoppers bursts past its read quota, so the limiter has someone to stop (besides
    /// the bursts <see cref="BurstRate"/> draws at random).
    /// </summary>
    public Func<long, CancellationToken, Task>? ExpireProduct { get; init; }
    public TimeSpan StampedeInterval { get; init; } = TimeSpan.FromSeconds(15);
    public int StampedeReaders { get; init; } = 24;

    /// <summary>The <c>catalog-admin</c> client's key, for the occasional price change; none, none made.</summary>
    public string? CatalogAdminKey { get; init; }

    public double AddToCartRate { get; init; } = 0.3;
    public double CheckoutRate { get; init; } = 0.04;
    public double PriceChangeRate { get; init; } = 0.005;
    public double BurstRate { get; init; } = 0.002;

    /// <summary>A pause between a shopper's actions, so a few shoppers look like many people rather than a load test.</summary>
    public TimeSpan ThinkTime { get; init; } = TimeSpan.FromMilliseconds(50);
}

/// <summary>A placed order as the shopper was told it: its id and lines.</summary>
public sealed record PlacedOrder(long Id, string IdempotencyKey, IReadOnlyDictionary<long, int> Lines);

/// <summary>One shopper at the end: its session cookie and the cart it expects, from what the server acknowledged.</summary>
public sealed record ShopperState(string Address, string? Cookie, IReadOnlyDictionary<long, int> ExpectedCart);

/// <summary>
/// Counts so far (a progress report) or at the end. <see cref="UnitsLost"/>: units of acknowledged cart changes that the
/// cart did not show afterwards (lost updates). <see cref="UnitsUnacknowledged"/>: units the cart showed that no answer
/// acknowledged, from a change whose answer was lost (a reset connection after the server applied it): not a loss, an
/// unknown outcome, which is why the cart answers such a failure with "retry" and never with "nothing changed".
/// </summary>
public sealed record SimulationProgress(TimeSpan Elapsed, IReadOnlyDictionary<int, long> RequestsByStatus, long Views, long Adds,
    long Checkouts, long PriceChanges, long Bursts, long UnitsLost, long UnitsUnacknowledged, long SessionsRestarted,
    long Stampedes, IReadOnlyDictionary<string, long> ProductReads)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Elapsed.TotalSeconds:0}s: {Views} views, {Adds} adds, {Checkouts} orders, {PriceChanges} price changes, {Bursts} bursts, {Stampedes} stampedes; " +
        $"product reads by X-Cache {string.Join(", ", ProductReads.OrderByDescending(r => r.Value).Select(r => $"{r.Key}×{r.Value}"))}; " +
        $"responses {string.Join(", ", RequestsByStatus.OrderBy(s => s.Key).Select(s => $"{(s.Key == 0 ? "no answer" : s.Key.ToString(CultureInfo.InvariantCulture))}×{s.Value}"))}");
}

/// <summary>
/// Simulated shoppers through the gateway: they browse (Zipf-distributed popularity), add to carts, check out with an
/// Idempotency-Key (retried with the same key until an answer is final), and now and then an administrator changes a
/// price or a shopper bursts past its read quota. Every acknowledged cart change is compared with the cart the server
/// answers, so a lost update shows at once (<see cref="SimulationProgress.CartsDiverged"/>); the orders each shopper
/// was told of are kept, so a run can be checked against PostgreSQL afterwards.
/// </summary>
public sealed class ShopperSimulation(SimulationOptions options)
{
    private readonly ConcurrentDictionary<int, long> _statuses = new();
    private readonly ConcurrentDictionary<string, long> _productReads = new();
    private readonly ConcurrentBag<PlacedOrder> _orders = [];
    private readonly ConcurrentBag<ShopperState> _shoppers = [];
    private readonly Zipf _popularity = new(options.Products);
    private long _views, _adds, _checkouts, _priceChanges, _bursts, _lost, _unacknowledged, _restarted, _stampedes;
    private readonly ConcurrentQueue<string> _errors = new();

    /// <summary>The first server errors (5xx other than 503), for a report to say what they were.</summary>
    public IReadOnlyCollection<string> Errors => _errors;
    private readonly DateTime _started = DateTime.UtcNow;
    private string? _adminToken;
    private DateTime _adminTokenExpires;
    private readonly SemaphoreSlim _tokenGate = new(1, 1);

    public IReadOnlyCollection<PlacedOrder> Orders => _orders;
    public IReadOnlyCollection<ShopperState> Shoppers => _shoppers;

    public SimulationProgress Progress() => new(DateTime.UtcNow - _started, new Dictionary<int, long>(_statuses),
        Interlocked.Read(ref _views), Interlocked.Read(ref _adds), Interlocked.Read(ref _checkouts), Interlocked.Read(ref _priceChanges),
        Interlocked.Read(ref _bursts), Interlocked.Read(ref _lost), Interlocked.Read(ref _unacknowledged), Interlocked.Read(ref _restarted),
        Interlocked.Read(ref _stampedes), new Dictionary<string, long>(_productReads));

    /// <summary>Runs the shoppers until the duration passes or <paramref name="cancellationToken"/> stops them; reports progress every few seconds.</summary>
    public async Task<SimulationProgress> RunAsync(Action<SimulationProgress>? progress, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(options.Duration);
        if (options.ShopperKey is not null && options.Shoppers > MaxKeyedShoppers)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"At most {MaxKeyedShoppers} shoppers speak through one shoppers key.");
        }
        var reporting = ReportAsync(progress, stop.Token);
        var stampedes = StampedesAsync(stop.Token);
        await Task.WhenAll(Enumerable.Range(0, options.Shoppers).Select(i => ShopAsync(i, stop.Token)));
        await Task.WhenAll(reporting, stampedes);
        return Progress();
    }

    private async Task ReportAsync(Action<SimulationProgress>? progress, CancellationToken cancellationToken)
    {
        if (progress is null)
        {
            return;
        }
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(5));
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                progress(Progress());
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The gateway's bound on the shoppers one key may speak for.</summary>
    public const int MaxKeyedShoppers = 64;

    private HttpClient ShopperClient(int index, out string address)
    {
        address = $"198.19.{index / 250}.{1 + index % 250}"; // the benchmarking range (RFC 2544): never a real client
        var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, PooledConnectionLifetime = TimeSpan.FromSeconds(30) })
        {
            BaseAddress = options.Gateway,
            Timeout = TimeSpan.FromSeconds(15),
        };
        if (options.ShopperKey is not null)
        {
            http.DefaultRequestHeaders.Add("X-Api-Key", options.ShopperKey);
            http.DefaultRequestHeaders.Add("X-Shopper", (1 + index % MaxKeyedShoppers).ToString(CultureInfo.InvariantCulture));
        }
        else if (options.DistinctAddresses)
        {
            http.DefaultRequestHeaders.Add("X-Forwarded-For", address);
        }
        return http;
    }

    // Now and then the hottest product expires while many shoppers want it: one of them loads it, the rest wait for that load.
    private async Task StampedesAsync(CancellationToken cancellationToken)
    {
        if (options.ExpireProduct is null)
        {
            return;
        }
        var readers = Enumerable.Range(0, options.StampedeReaders).Select(i => ShopperClient(i, out _)).ToList();
        try
        {
            using var timer = new PeriodicTimer(options.StampedeInterval);
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                await options.ExpireProduct(Zipf.Hottest, cancellationToken);
                using var start = new SemaphoreSlim(0);
                var reads = readers.Select(async http =>
                {
                    await start.WaitAsync(cancellationToken);
                    using var response = await SendAsync(http, HttpMethod.Get, $"/api/catalog/products/{Zipf.Hottest}", null, null, cancellationToken);
                }).ToList();
                start.Release(readers.Count);
                await Task.WhenAll(reads);
                Interlocked.Increment(ref _stampedes);
                await BurstAsync(readers[(int)(Interlocked.Read(ref _stampedes) % readers.Count)], cancellationToken);
            }
        }
        catch (Exception ex) when (cancellationToken.IsCancellationRequested && ex is OperationCanceledException or HttpRequestException)
        {
        }
        finally
        {
            readers.ForEach(http => http.Dispose());
        }
    }

    private async Task ShopAsync(int index, CancellationToken cancellationToken)
    {
        var random = new Random(options.Seed + index);
        using var http = ShopperClient(index, out var address);
        var cart = new CartState();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var product = _popularity.Next(random);
                await SendAsync(http, HttpMethod.Get, $"/api/catalog/products/{product}", null, null, cancellationToken);
                Interlocked.Increment(ref _views);
                var roll = random.NextDouble();
                if (roll < options.BurstRate)
                {
                    await BurstAsync(http, cancellationToken);
                }
                else if (roll < options.BurstRate + options.PriceChangeRate && options.CatalogAdminKey is not null)
                {
                    await ChangePriceAsync(http, product, random, cancellationToken);
                }
                else if (roll < options.BurstRate + options.PriceChangeRate + options.CheckoutRate && cart.Expected.Count > 0)
                {
                    await CheckoutAsync(http, cart, cancellationToken);
                }
                else if (roll < options.BurstRate + options.PriceChangeRate + options.CheckoutRate + options.AddToCartRate)
                {
                    await AddAsync(http, cart, product, 1 + random.Next(3), cancellationToken);
                }
                await Task.Delay(options.ThinkTime, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        _shoppers.Add(new ShopperState(address, cart.Cookie, new Dictionary<long, int>(cart.Expected)));
    }

    private async Task AddAsync(HttpClient http, CartState cart, long product, int quantity, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(http, HttpMethod.Post, "/api/cart/items", cart.Cookie, new { productId = product, quantity }, cancellationToken);
        if (response?.StatusCode != HttpStatusCode.OK)
        {
            return; // refused (a quota, an outage): nothing was changed, nothing is expected
        }
        if (SessionCookie(response) is { } started && started != cart.Cookie)
        {
            // The server started a new session: the old one is gone (or there was none yet).
            if (cart.Cookie is not null && cart.Expected.Count > 0)
            {
                Interlocked.Increment(ref _restarted);
            }
            cart.Cookie = started;
            cart.Expected.Clear();
        }
        cart.Expected[product] = cart.Expected.GetValueOrDefault(product) + quantity;
        Interlocked.Increment(ref _adds);
        Compare(cart, await LinesAsync(response, cancellationToken));
    }

    private async Task CheckoutAsync(HttpClient http, CartState cart, CancellationToken cancellationToken)
    {
        var key = Guid.NewGuid().ToString("N");
        for (var attempt = 0; attempt < 30 && !cancellationToken.IsCancellationRequested; attempt++)
        {
            using var response = await SendAsync(http, HttpMethod.Post, "/api/cart/checkout", cart.Cookie, new { email = "shopper@example.com" }, cancellationToken, key);
            switch (response?.StatusCode)
            {
                case HttpStatusCode.OK:
                    var order = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
                    var lines = order.GetProperty("lines").EnumerateArray()
                        .ToDictionary(l => l.GetProperty("productId").GetInt64(), l => l.GetProperty("quantity").GetInt32());
                    if (!_orders.Any(o => o.IdempotencyKey == key))
                    {
                        _orders.Add(new PlacedOrder(order.GetProperty("id").GetInt64(), key, lines));
                        Interlocked.Increment(ref _checkouts);
                    }
                    foreach (var (product, quantity) in lines)
                    {
                        var left = cart.Expected.GetValueOrDefault(product) - quantity;
                        if (left > 0) cart.Expected[product] = left; else cart.Expected.Remove(product);
                    }
                    return;
                case HttpStatusCode.Conflict when attempt == 0:
                    cart.Expected.Clear(); // the server says the cart is empty; the next add will show whether it lost lines
                    return;
                case HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity:
                    return;
            }
            // No answer, 503 (unknown outcome, or a store down), 429, or 409 "still running": ask again with the same key, later.
            await Task.Delay(TimeSpan.FromMilliseconds(500 * Math.Min(attempt + 1, 4)), cancellationToken);
        }
    }

    private async Task ChangePriceAsync(HttpClient http, long product, Random random, CancellationToken cancellationToken)
    {
        using var read = await SendAsync(http, HttpMethod.Get, $"/api/catalog/products/{product}", null, null, cancellationToken);
        if (read?.StatusCode != HttpStatusCode.OK || read.Headers.ETag is not { } etag || await AdminTokenAsync(http, cancellationToken) is not { } token)
        {
            return;
        }
        var current = await read.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/api/catalog/products/{product}")
        {
            Content = JsonContent.Create(new
            {
                name = current.GetProperty("name").GetString(),
                description = current.GetProperty("description").GetString(),
                category = current.GetProperty("category").GetString(),
                price = Math.Round(5 + (decimal)random.NextDouble() * 500, 2),
                stock = current.GetProperty("stock").GetInt32(),
            }),
        };
        request.Headers.IfMatch.Add(etag);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await SendAsync(http, request, cancellationToken);
        if (response?.StatusCode == HttpStatusCode.OK)
        {
            Interlocked.Increment(ref _priceChanges);
        }
    }

    // Past the anonymous read quota: the gateway's limiter answers 429 with Retry-After.
    private async Task BurstAsync(HttpClient http, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _bursts);
        await Task.WhenAll(Enumerable.Range(0, 120).Select(_ => Task.Run(async () =>
        {
            using var response = await SendAsync(http, HttpMethod.Get, "/api/ratelimit/policies", null, null, cancellationToken);
        }, cancellationToken)));
    }

    private async Task<string?> AdminTokenAsync(HttpClient http, CancellationToken cancellationToken)
    {
        await _tokenGate.WaitAsync(cancellationToken);
        try
        {
            if (_adminToken is not null && DateTime.UtcNow < _adminTokenExpires)
            {
                return _adminToken;
            }
            try
            {
                var token = await ShopClient.TokenAsync(http, "catalog-admin", options.CatalogAdminKey ?? "", cancellationToken);
                (_adminToken, _adminTokenExpires) = (token.Value, DateTime.UtcNow + token.ExpiresIn - TimeSpan.FromSeconds(30));
                return _adminToken;
            }
            catch (HttpRequestException)
            {
                return null; // refused or unreachable: the price change is skipped, as any failed request is
            }
        }
        finally
        {
            _tokenGate.Release();
        }
    }

    private void Compare(CartState cart, IReadOnlyDictionary<long, int>? server)
    {
        if (server is null)
        {
            return;
        }
        var (lost, unacknowledged) = Difference(cart.Expected, server);
        Interlocked.Add(ref _lost, lost);
        Interlocked.Add(ref _unacknowledged, unacknowledged);
        if (lost + unacknowledged > 0)
        {
            cart.Expected.Clear();
            foreach (var (product, quantity) in server) cart.Expected[product] = quantity; // from here on, the server's truth
        }
    }

    /// <summary>Units expected but missing (lost), and units present but never acknowledged.</summary>
    public static (long Lost, long Unacknowledged) Difference(IReadOnlyDictionary<long, int> expected, IReadOnlyDictionary<long, int> actual)
    {
        long lost = 0, unacknowledged = 0;
        foreach (var product in expected.Keys.Union(actual.Keys))
        {
            var difference = actual.GetValueOrDefault(product) - expected.GetValueOrDefault(product);
            if (difference < 0) lost -= difference; else unacknowledged += difference;
        }
        return (lost, unacknowledged);
    }

    private static async Task<IReadOnlyDictionary<long, int>?> LinesAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        return body.TryGetProperty("lines", out var lines)
            ? lines.EnumerateArray().ToDictionary(l => l.GetProperty("productId").GetInt64(), l => l.GetProperty("quantity").GetInt32())
            : null;
    }

    /// <summary>The cart the server holds for a cookie now (null when it cannot say).</summary>
    public static async Task<IReadOnlyDictionary<long, int>?> CartAsync(HttpClient http, string cookie, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/cart");
        request.Headers.Add("Cookie", cookie);
        using var response = await http.SendAsync(request, cancellationToken);
        return response.IsSuccessStatusCode ? await LinesAsync(response, cancellationToken) : null;
    }

    /// <summary>The <c>shop.sid=…</c> part of the session cookie a response sets, or null.</summary>
    public static string? SessionCookie(HttpResponseMessage response) => ShopClient.SetCookie(response);

    private Task<HttpResponseMessage?> SendAsync(HttpClient http, HttpMethod method, string path, string? cookie, object? body,
        CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (cookie is not null) request.Headers.Add("Cookie", cookie);
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        return SendAsync(http, request, cancellationToken);
    }

    private async Task<HttpResponseMessage?> SendAsync(HttpClient http, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using (request)
        {
            try
            {
                var response = await http.SendAsync(request, cancellationToken);
                _statuses.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
                if (response.Headers.TryGetValues("X-Cache", out var cache) && cache.FirstOrDefault() is { } outcome)
                {
                    _productReads.AddOrUpdate(outcome, 1, (_, n) => n + 1);
                }
                await response.Content.LoadIntoBufferAsync(cancellationToken);
                if ((int)response.StatusCode >= 500 && response.StatusCode != HttpStatusCode.ServiceUnavailable && _errors.Count < 20)
                {
                    _errors.Enqueue($"{request.Method} {request.RequestUri}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
                }
                return response;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                _statuses.AddOrUpdate(0, 1, (_, n) => n + 1); // no answer: a reset connection, a timeout
                return null;
            }
        }
    }

    private sealed class CartState
    {
        public string? Cookie;
        public Dictionary<long, int> Expected { get; } = [];
    }
}
