using Microsoft.Playwright;

namespace ShopReference.DashboardTour;

/// <summary>The pages the tour captures, each as one PNG in the output folder.</summary>
public sealed class Tour(IPage page, string output)
{
    public async Task CaptureAsync(string name)
    {
        var path = Path.Combine(output, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path });
        Console.WriteLine($"  captured {Path.GetFileName(path)}");
    }

    /// <summary>One trace's detail page, once its spans from the gateway down to PostgreSQL have arrived.</summary>
    public async Task TraceAsync(string traceId, string name)
    {
        // Spans reach the dashboard in batches (about a second apart): reload until the database call is there.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            await page.GotoAsync($"/traces/detail/{traceId}");
            var database = page.GetByText("catalogdb").Or(page.GetByText("postgres")).First;
            try
            {
                await database.WaitForAsync(new() { Timeout = 5_000 });
                break;
            }
            catch (TimeoutException) when (DateTime.UtcNow < deadline)
            {
            }
        }
        await CaptureAsync(name);
    }

    /// <summary>One instrument's graph for a resource, over the last five minutes.</summary>
    public async Task MetricsAsync(string resource, string meter, string instrument, string name)
    {
        await page.GotoAsync($"/metrics/resource/{Uri.EscapeDataString(resource)}?meter={Uri.EscapeDataString(meter)}" +
            $"&instrument={Uri.EscapeDataString(instrument)}&duration=5&view=Graph");
        await page.GetByText(instrument).First.WaitForAsync();
        // The graph is drawn in the browser once the points arrive: wait for its first line.
        await page.Locator(".js-plotly-plot g.trace").First.WaitForAsync();
        await CaptureAsync(name);
    }
}
