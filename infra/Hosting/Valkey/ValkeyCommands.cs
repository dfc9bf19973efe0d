using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ShopReference.Hosting;

/// <summary>
/// The dashboard command on Valkey that an operator would otherwise type into <c>valkey-cli</c>: keys, memory against its
/// limit, and the slowest recent commands, for the server or for every node of a cluster. It connects as the
/// administrator (the <c>valkey-password</c> parameter): INFO and SLOWLOG are refused to the services' users.
/// </summary>
public static class ValkeyCommands
{
    private const int Slowest = 5;

    /// <summary>Adds the <c>valkey-report</c> command (run mode only).</summary>
    public static IResourceBuilder<IValkeyResource> WithReportCommand(this IResourceBuilder<IValkeyResource> valkey)
    {
        if (!valkey.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            return valkey;
        }
        return valkey.WithCommand("valkey-report", "Keys, memory and slow commands", async context =>
        {
            var password = await valkey.Resource.PasswordParameter.GetValueAsync(context.CancellationToken) ?? "";
            var ports = valkey.Resource is LocalValkeyClusterResource cluster ? cluster.Nodes.Select(n => n.Port) : [valkey.Resource.PrimaryEndpoint.Port];
            var report = new List<string>();
            foreach (var port in ports)
            {
                try
                {
                    report.Add(await ValkeyReport.DescribeAsync("127.0.0.1", port, password, Slowest, context.CancellationToken));
                }
                catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or RespErrorException)
                {
                    report.Add($":{port} does not answer: {ex.Message}");
                }
            }
            var text = string.Join(Environment.NewLine, report);
            context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(valkey.Resource).LogInformation("{Report}", text);
            return CommandResults.Success(text);
        }, new CommandOptions
        {
            Description = $"INFO keyspace, INFO memory and the {Slowest} slowest recent commands (COMMANDLOG or SLOWLOG) of each node, " +
                "also written to the resource's console log.",
            IconName = "DataUsage",
            UpdateState = CommandState.EnabledWhenHealthy,
        });
    }
}
