using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace ShopReference.Testing;

/// <summary>
/// A TCP proxy on a free loopback port in front of a server, for fault tests: <see cref="Cut"/> resets every open
/// connection (RST, as a crashed peer or a broken network would) and resets new ones until <see cref="Restore"/>. Unlike
/// pausing the server (SIGSTOP, <c>CLIENT PAUSE</c>), which queues commands and runs them on resume, a cut really
/// loses what was in flight, so a caller that swallowed the failure is caught.
/// </summary>
public sealed class TcpFaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Socket, byte> _sockets = new();
    private readonly Task _accepting;
    private volatile bool _cut;

    public TcpFaultProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>How many connections were reset by cuts.</summary>
    public int Resets => _resets;
    private int _resets;

    /// <summary>Resets every open connection and every new one, until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        _cut = true;
        foreach (var socket in _sockets.Keys)
        {
            Reset(socket);
        }
    }

    /// <summary>Ends a <see cref="Cut"/> or a <see cref="Stall"/>: new connections are accepted, stalled bytes flow on.</summary>
    public void Restore()
    {
        _cut = false;
        _flowing.TrySetResult();
    }

    /// <summary>
    /// Stops forwarding in both directions without closing anything, as a silent network partition does: the peers see
    /// no error, only silence, and what was sent meanwhile arrives after <see cref="Restore"/> (TCP retransmits it).
    /// </summary>
    public void Stall()
    {
        if (_flowing.Task.IsCompleted)
        {
            _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    private volatile TaskCompletionSource _flowing = Flowing();

    private static TaskCompletionSource Flowing()
    {
        var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        flowing.SetResult();
        return flowing;
    }

    /// <summary>
    /// Arms a cut at the worst moment: on the first connection whose client sends <paramref name="armedBy"/> and then
    /// <paramref name="trigger"/>, the server's reply to the trigger is swallowed and every connection reset. The server
    /// did what was asked (a COMMIT, say); the client never learns it.
    /// </summary>
    public void CutAfterReplyTo(string armedBy, string trigger)
    {
        _armedBy = System.Text.Encoding.ASCII.GetBytes(armedBy);
        _trigger = System.Text.Encoding.ASCII.GetBytes(trigger);
    }

    /// <summary>True once an armed cut has fired.</summary>
    public bool Fired => _fired;

    private volatile byte[]? _armedBy;
    private volatile byte[]? _trigger;
    private volatile bool _fired;

    private sealed class PipeState
    {
        public bool Armed;
        public volatile bool CutOnReply;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            if (_cut)
            {
                Reset(client);
                continue;
            }
            _ = PipeAsync(client);
        }
    }

    private async Task PipeAsync(Socket client)
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
        }
        catch (Exception)
        {
            Reset(client);
            server.Dispose();
            return;
        }
        _sockets[client] = 0;
        _sockets[server] = 0;
        var state = new PipeState();
        await Task.WhenAny(CopyAsync(client, server, state, fromClient: true), CopyAsync(server, client, state, fromClient: false));
        Reset(client);
        Reset(server);
    }

    private async Task CopyAsync(Socket from, Socket to, PipeState state, bool fromClient)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0 || _cut)
                {
                    return;
                }
                var data = buffer.AsSpan(0, read);
                if (fromClient && _armedBy is { } armedBy && _trigger is { } trigger && !_fired)
                {
                    state.Armed |= data.IndexOf(armedBy) >= 0;
                    if (state.Armed && data.IndexOf(trigger) >= 0)
                    {
                        state.CutOnReply = true;
                    }
                }
                else if (!fromClient && state.CutOnReply && !_fired)
                {
                    _fired = true;
                    _armedBy = null;
                    Cut(); // the reply is dropped with the connections
                    return;
                }
                await _flowing.Task.WaitAsync(_stop.Token);
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception)
        {
            // a reset or a disposed socket: the pipe ends
        }
    }

    // Linger 0 makes Close send RST instead of FIN: the peer sees "connection reset", not an orderly close.
    private void Reset(Socket socket)
    {
        _sockets.TryRemove(socket, out _);
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
            Interlocked.Increment(ref _resets);
        }
        catch (Exception)
        {
            // already gone
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        foreach (var socket in _sockets.Keys)
        {
            Reset(socket);
        }
        try
        {
            await _accepting;
        }
        catch (Exception)
        {
            // stopping
        }
        _stop.Dispose();
    }
}
