using ShopReference.Hosting;

namespace ShopReference.Testing;

/// <summary>
/// A throw-away Valkey (or redis-server) on a free loopback port with a random password and its own folder,
/// configured by the same <see cref="ValkeyConfigFile"/> the AppHost's Local mode uses.
/// </summary>
public sealed class TestValkeyServer : IAsyncDisposable
{
    private readonly string _directory;
    private readonly string _binary;
    private ServerProcess _process;

    private TestValkeyServer(ServerProcess process, string binary, string directory, int port, string password)
    {
        _process = process;
        _binary = binary;
        _directory = directory;
        Port = port;
        Password = password;
    }

    public int Port { get; }
    public string Password { get; }
    public int ProcessId => _process.Id;

    /// <summary>StackExchange.Redis format, as the AppHost hands it to the services.</summary>
    public string ConnectionString => $"127.0.0.1:{Port},password={Password},abortConnect=false";

    /// <summary>For outage tests: the same server, with 1 s timeouts, so a command fails soon after the server stops.</summary>
    public string FastFailConnectionString => ConnectionString + ",connectTimeout=1000,syncTimeout=1000,asyncTimeout=1000";

    /// <param name="settings">More configuration lines (a memory limit, ACL users), as the AppHost writes them.</param>
    /// <param name="persistent">Keep data across <see cref="RestartAsync"/> (append-only file), as the AppHost's server does.</param>
    public static async Task<TestValkeyServer> StartAsync(TimeSpan? timeout = null, IEnumerable<string>? settings = null, bool persistent = false)
    {
        var binary = ServerBinaries.FindValkeyServer()
            ?? throw new InvalidOperationException($"No valkey-server or redis-server on PATH. {ServerBinaries.InstallHint}");
        var directory = Directory.CreateTempSubdirectory("shopref-valkey-").FullName;
        var password = Secrets.NewPassword();
        ValkeyConfigFile.Write(directory, password, persistent, settings);
        var port = LocalPorts.NextFree();

        var process = await LaunchAsync(binary, directory, port, password, timeout ?? TimeSpan.FromSeconds(30));
        return new TestValkeyServer(process, binary, directory, port, password);
    }

    /// <summary>Stops the server (to test what a pattern does while Valkey is down).</summary>
    public Task StopAsync() => _process.StopAsync(TimeSpan.FromSeconds(10));

    /// <summary>Starts the server again on the same port and password: empty, or with its data when it is persistent.</summary>
    public async Task RestartAsync()
    {
        await _process.DisposeAsync();
        _process = await LaunchAsync(_binary, _directory, Port, Password, TimeSpan.FromSeconds(30));
    }

    private static async Task<ServerProcess> LaunchAsync(string binary, string directory, int port, string password, TimeSpan timeout)
    {
        var config = Path.Combine(directory, "valkey.conf");
        var process = ServerProcess.Start(binary, [config, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await process.WaitUntilReadyAsync(ct => RespProbe.PingAsync("127.0.0.1", port, password, ct), timeout, Path.GetFileName(binary));
        return process;
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        TryDelete(_directory);
    }

    internal static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
