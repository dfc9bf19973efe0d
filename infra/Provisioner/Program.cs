using ShopReference.Provisioner;

// The PostgreSQL roles and databases of the services (docs/deploy.md), in run mode and on a deployment alike: created or
// brought up to date with the superuser's connection string, then the process exits, 0 once done. It is the only
// holder of that connection string, and holds it only while it provisions: no endpoint, nothing left running.
var builder = Host.CreateApplicationBuilder(args);
using var host = builder.Build();
await host.StartAsync();
var exitCode = await DatabaseSetup.RunAsync(host.Services.GetRequiredService<IConfiguration>(),
    host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ShopReference.Provisioner"),
    host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
await host.StopAsync();
return exitCode;
