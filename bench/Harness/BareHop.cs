using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using System.Diagnostics;
using System.Globalization;
using Yarp.ReverseProxy.Configuration;

namespace ShopReference.Bench.Harness;

/// <summary>
/// The gateway's anchor in <c>bench -- http</c>: a YARP app with one catch-all route to the catalog replicas and nothing
/// else (no limiter, no authentication, no client context, no telemetry, no logging), in a process of its own, as the
/// gateway is. What a forwarding hop costs at least; the gateway's distance from it is what its own work costs.
/// </summary>
public static class BareHop
{
    public const string Name = "bare-hop";

    /// <summary>Runs the hop (this process was started by <see cref="Start"/>): <c>bare-hop PORT DESTINATION…</c>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var port = int.Parse(args[1], CultureInfo.InvariantCulture);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Services.AddReverseProxy().LoadFromMemory(
            [new RouteConfig { RouteId = "all", ClusterId = "catalog", Match = new RouteMatch { Path = "{**rest}" } }],
            [new ClusterConfig
            {
                ClusterId = "catalog",
                Destinations = args[2..].Select((address, i) => (address, i)).ToDictionary(d => $"replica{d.i}", d => new DestinationConfig { Address = d.address }),
            }]);
        var app = builder.Build();
        app.MapReverseProxy();
        await app.RunAsync();
        return 0;
    }

    /// <summary>Starts the hop as a child process in front of <paramref name="destinations"/>, answering on <paramref name="port"/>.</summary>
    public static Process Start(int port, IEnumerable<Uri> destinations)
    {
        // Under `dotnet run` this process is the bench's own executable; under `dotnet ShopReference.Bench.dll` it is dotnet.
        var host = Environment.ProcessPath!;
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(typeof(BareHop).Assembly.Location);
        }
        start.ArgumentList.Add(Name);
        start.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        foreach (var destination in destinations)
        {
            start.ArgumentList.Add(destination.ToString());
        }
        return Process.Start(start) ?? throw new InvalidOperationException("the bare hop did not start");
    }
}
