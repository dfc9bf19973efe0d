using ShopReference.ShoppersApp;
using ShopReference.Shoppers;

// One run of simulated shoppers through the gateway (docs/dashboard.md): started from the dashboard, never on its own,
// it writes its counts every 5 s and a summary at the end to its console log, then exits. Stop ends it early.
var builder = Host.CreateApplicationBuilder(args);
using var host = builder.Build();
var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ShopReference.Shoppers");
if (!ShoppersSettings.TryRead(builder.Configuration, out var settings, out var problem))
{
    log.LogError("Shoppers cannot start: {Problem}", problem);
    return 2;
}
await host.StartAsync();
var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
var simulation = new ShopperSimulation(settings.ToOptions());
log.LogInformation("Shoppers started: {Shoppers} shoppers for {Seconds} s", settings.Count, settings.Seconds);
try
{
    var final = await simulation.RunAsync(progress => log.LogInformation("Shoppers: {Progress}", progress), stopping);
    log.LogInformation("Shoppers finished: {Summary}", final);
    foreach (var error in simulation.Errors) log.LogWarning("Shoppers saw a server error: {Error}", error);
    return 0;
}
catch (Exception ex) when (ex is HttpRequestException or InvalidOperationException)
{
    log.LogError(ex, "Shoppers failed: {Message}", ex.Message);
    return 1;
}
finally
{
    await host.StopAsync(CancellationToken.None);
}
