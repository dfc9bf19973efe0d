using System.Globalization;
using ShopReference.Hosting;

namespace ShopReference.Testing;

/// <summary>
/// A throw-away Valkey (or redis-server) cluster on loopback: <c>shards</c> primaries, each with
/// <c>replicasPerShard</c> replicas, one random password, formed by the same <see cref="ValkeyClusterFormation"/> the
/// AppHost's Local mode uses. Each node gets a free client port and a free cluster-bus port (<see cref="LocalPorts"/>).
/// </summary>
public sealed class TestValkeyCluster : IAsyncDisposable
{
    private readonly List<Node> _nodes;

    private TestValkeyCluster(List<Node> nodes, string password, int shards)
    {
        _nodes = nodes;
        Password = password;
        Shards = shards;
    }

    public string Password { get; }
    public int Shards { get; }

    /// <summary>Every node's client port, primaries first (as formed; a failover may have swapped roles since).</summary>
    public IReadOnlyList<int> Ports => [.. _nodes.Select(n => n.Port)];

    /// <summary>StackExchange.Redis format: every node as a seed, so the client finds the cluster from any of them.</summary>
    public string ConnectionString =>
        string.Join(',', _nodes.Select(n => $"127.0.0.1:{n.Port}")) + $",password={Password},abortConnect=false";

    public static async Task<TestValkeyCluster> StartAsync(int shards = 3, int replicasPerShard = 1, IEnumerable<string>? settings = null, TimeSpan? timeout = null)
    {
        var binary = ServerBinaries.FindValkeyServer()
            ?? throw new InvalidOperationException($"No valkey-server or redis-server on PATH. {ServerBinaries.InstallHint}");
        var password = Secrets.NewPassword();
        var nodes = new List<Node>();
        try
        {
            var starts = Enumerable.Range(0, shards * (1 + replicasPerShard)).Select(async _ =>
            {
                var directory = Directory.CreateTempSubdirectory("shopref-valkey-cluster-").FullName;
                ValkeyConfigFile.Write(directory, password, persistent: false, [.. ValkeyClusterFormation.NodeSettings(password), .. settings ?? []]);
                var node = new Node(binary, directory, LocalPorts.NextFree(), LocalPorts.NextFree()); // fixed before start: see LocalPorts
                lock (nodes) nodes.Add(node);
                await node.StartAsync(password);
                return node;
            }).ToList();
            var started = await Task.WhenAll(starts);
            nodes.Clear();
            nodes.AddRange(started); // in start order: the formation makes the first `shards` the primaries
            await ValkeyClusterFormation.FormAsync([.. nodes.Select(n => new ValkeyNodePorts(n.Port, n.BusPort))], password, shards, timeout ?? TimeSpan.FromSeconds(60), CancellationToken.None);
            return new TestValkeyCluster(nodes, password, shards);
        }
        catch
        {
            foreach (var node in nodes) await node.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client that already sees every primary connected (a fresh client may still be reading the slot map).</summary>
    public async Task<StackExchange.Redis.ConnectionMultiplexer> ConnectAsync(string options = "")
    {
        var client = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(ConnectionString + options);
        await Eventually.UntilAsync(() => client.GetServers().Count(s => s.IsConnected && !s.IsReplica) == Shards,
            TimeSpan.FromSeconds(30), "the client never saw every primary of the cluster");
        return client;
    }

    /// <summary>Kills the node on <paramref name="port"/> at once (SIGKILL: no goodbye to its peers), as a crash would.</summary>
    public Task KillAsync(int port) => _nodes.Single(n => n.Port == port).KillAsync();

    /// <summary>The client ports of the nodes that serve slots now (after a failover, a promoted replica is one).</summary>
    public async Task<IReadOnlyList<int>> PrimaryPortsAsync(CancellationToken cancellationToken = default)
    {
        foreach (var node in _nodes.Where(n => n.IsRunning))
        {
            try
            {
                await using var client = await RespClient.ConnectAsync("127.0.0.1", node.Port, Password, cancellationToken);
                var shards = (List<object?>)(await client.SendAsync(cancellationToken, "CLUSTER", "SLOTS"))!;
                return [.. shards.Cast<List<object?>>().Select(range => (int)(long)((List<object?>)range[2]!)[1]!).Distinct()];
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or RespErrorException)
            {
                // that node is down or not ready: ask another
            }
        }
        throw new InvalidOperationException("No node of the cluster answers.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }
    }

    private sealed class Node(string binary, string directory, int port, int busPort) : IAsyncDisposable
    {
        private ServerProcess? _process;

        public int Port { get; } = port;
        public int BusPort { get; } = busPort;
        public bool IsRunning => _process is { HasExited: false };

        public async Task StartAsync(string password)
        {
            _process = ServerProcess.Start(binary,
            [
                Path.Combine(directory, "valkey.conf"),
                "--port", Port.ToString(CultureInfo.InvariantCulture),
                "--cluster-port", BusPort.ToString(CultureInfo.InvariantCulture),
            ]);
            await _process.WaitUntilReadyAsync(ct => RespProbe.PingAsync("127.0.0.1", Port, password, ct), TimeSpan.FromSeconds(30), Path.GetFileName(binary));
        }

        public async Task KillAsync()
        {
            if (_process is not null)
            {
                await _process.KillAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_process is not null)
            {
                await _process.DisposeAsync();
            }
            TestValkeyServer.TryDelete(directory);
        }
    }
}
