using ShopReference.LocalServers;

namespace ShopReference.Testing;

/// <summary>
/// A throw-away Valkey (or redis-server) on a free loopback port with a random password and its own folder,
/// configured by the same <see cref="ValkeyConfigFile"/> the AppHost's Local mode uses.
/// </summary>
public sealed class TestValkeyServer : IAsyncDisposable
{
    private readonly ServerProcess _process;
    private readonly string _directory;

    private TestValkeyServer(ServerProcess process, string directory, int port, string password)
    {
        _process = process;
        _directory = directory;
        Port = port;
        Password = password;
    }

    public int Port { get; }
    public string Password { get; }
    public int ProcessId => _process.Id;

    /// <summary>StackExchange.Redis format, as the AppHost hands it to the services.</summary>
    public string ConnectionString => $"127.0.0.1:{Port},password={Password},abortConnect=false";

    public static async Task<TestValkeyServer> StartAsync(TimeSpan? timeout = null)
    {
        var binary = ServerBinaries.FindValkeyServer()
            ?? throw new InvalidOperationException($"No valkey-server or redis-server on PATH. {ServerBinaries.InstallHint}");
        var directory = Directory.CreateTempSubdirectory("shopref-valkey-").FullName;
        var password = Secrets.NewPassword();
        var config = ValkeyConfigFile.Write(directory, password, persistent: false);
        var port = FreePort.Next();

        var process = ServerProcess.Start(binary, [config, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await process.WaitUntilReadyAsync(ct => RespProbe.PingAsync("127.0.0.1", port, password, ct),
            timeout ?? TimeSpan.FromSeconds(30), Path.GetFileName(binary));
        return new TestValkeyServer(process, directory, port, password);
    }

    /// <summary>Stops the server (to test what a pattern does while Valkey is down).</summary>
    public Task StopAsync() => _process.StopAsync(TimeSpan.FromSeconds(10));

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
