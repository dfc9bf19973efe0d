using Microsoft.Playwright;

namespace ShopReference.Testing.Dashboard;

/// <summary>
/// Headless Chromium from Debian (<c>apt-get install chromium</c>) driven by Playwright: Playwright's own browser
/// download does not work without the internet, so its bundled driver talks to the system browser instead.
/// </summary>
public sealed class DashboardBrowser : IAsyncDisposable
{
    /// <summary>Where Debian installs Chromium; <c>SHOPREF_CHROMIUM</c> names another.</summary>
    public static string ChromiumPath => Environment.GetEnvironmentVariable("SHOPREF_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public static bool ChromiumInstalled => File.Exists(ChromiumPath);

    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private DashboardBrowser(IPlaywright playwright, IBrowser browser, IPage page)
    {
        _playwright = playwright;
        _browser = browser;
        Page = page;
    }

    public IPage Page { get; }

    public static async Task<DashboardBrowser> OpenAsync(Uri dashboard)
    {
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ChromiumPath,
                Headless = true,
                // As root Chromium needs --no-sandbox; the network flags stop it calling Google's hosts, which this
                // machine refuses (many connections at every start otherwise).
                Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync"],
            });
            var context = await browser.NewContextAsync(new BrowserNewContextOptions
            {
                BaseURL = dashboard.ToString(),
                ViewportSize = new ViewportSize { Width = 1600, Height = 900 },
                ColorScheme = ColorScheme.Light,
            });
            var page = await context.NewPageAsync();
            // Generous: the dashboard, the app and the browser share two busy cores in CI.
            page.SetDefaultTimeout(60_000);
            return new DashboardBrowser(playwright, browser, page);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
