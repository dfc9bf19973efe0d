using System.Diagnostics;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// What the dashboard's Traces page would hold, counted from the services' own OTLP export: a minute of an idle app
/// (stream polls, claims, lease renewals, probes all running) makes fewer than 50 traces, and one request sent through
/// the gateway in that minute is there as one trace, gateway to service.
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class TraceNoiseTests(ShopAppFixture fixture)
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task An_idle_minute_exports_fewer_than_50_traces_and_a_request_through_the_gateway_is_one_of_them()
    {
        var ct = TestContext.Current.CancellationToken;
        var telemetry = fixture.Shop.Telemetry;
        var start = DateTime.UtcNow;
        var traceId = ActivityTraceId.CreateRandom();
        using (var gateway = fixture.Shop.App.CreateHttpClient("rate-limit"))
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/api/catalog/products/3"))
        {
            request.Headers.Add("traceparent", $"00-{traceId.ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-01");
            using var response = await gateway.SendAsync(request, ct);
            Assert.True(response.IsSuccessStatusCode, response.StatusCode.ToString());
        }

        // The measurement window itself: the app is left alone for a minute, as a user would leave it.
        await Task.Delay(Window, ct);
        var end = start + Window;
        // Every instance has exported metrics since the window closed (plus its trace batches' 1-s delay), so every span
        // of the window has arrived.
        await Eventually.UntilAsync(() => Task.FromResult(
                telemetry.LastMetricsExport.Count(e => e.Value > end.AddSeconds(2)) >= 7), TimeSpan.FromSeconds(60),
            $"not every service instance exported after the window: {string.Join(", ", telemetry.LastMetricsExport.Keys)}",
            TimeSpan.FromMilliseconds(500), ct);

        var inWindow = telemetry.Spans.Where(s => s.IsRoot && s.Start >= start && s.Start < end).ToList();
        var traces = inWindow.Select(s => s.TraceId).Distinct().Count();
        var ours = telemetry.Spans.Where(s => s.TraceId == traceId.ToHexString()).ToList();
        var report = $"{traces} traces in an idle minute (OTLP export): " + string.Join(", ",
            inWindow.GroupBy(s => $"{s.Service}: {s.Name}").OrderByDescending(g => g.Count()).Take(8).Select(g => $"{g.Key} ×{g.Count()}"));
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Assert.True(traces < 50, report);
        Assert.Contains(ours, s => s.Service == "rate-limit");
        Assert.Contains(ours, s => s.Service == "catalog");
    }
}
