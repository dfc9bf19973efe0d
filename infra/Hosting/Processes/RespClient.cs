using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace ShopReference.Hosting;

/// <summary>An error reply (<c>-ERR …</c>) from Valkey.</summary>
public sealed class RespErrorException(string message) : Exception(message);

/// <summary>
/// A minimal RESP2 client for the few administrative commands the local orchestration sends before any service runs
/// (forming a cluster: <c>CLUSTER MEET</c>, <c>ADDSLOTSRANGE</c>, <c>REPLICATE</c>, <c>INFO</c>). A client library is
/// not used here on purpose: a cluster-aware one refuses a node that has no slots yet, which is the state being fixed.
/// Replies: simple and bulk strings as <see cref="string"/>, integers as <see cref="long"/>, arrays as
/// <see cref="List{T}"/> of objects, nil as null; an error reply throws <see cref="RespErrorException"/>.
/// </summary>
public sealed class RespClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly BufferedStream _input;

    private RespClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _input = new BufferedStream(_stream, 16 * 1024);
    }

    /// <summary>Connects and, with a password, authenticates as the default user.</summary>
    public static async Task<RespClient> ConnectAsync(string host, int port, string? password, CancellationToken cancellationToken)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(host, port, cancellationToken);
            var client = new RespClient(tcp);
            if (!string.IsNullOrEmpty(password))
            {
                await client.SendAsync(cancellationToken, "AUTH", password);
            }
            return client;
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>Sends one command (each part a bulk string, so values are sent verbatim) and reads its reply.</summary>
    public async Task<object?> SendAsync(CancellationToken cancellationToken, params string[] parts)
    {
        await WriteAsync(cancellationToken, parts);
        return await ReadAsync(cancellationToken);
    }

    /// <summary>Sends one command and does not read its reply (a script that never returns, to make a server busy).</summary>
    public async Task WriteAsync(CancellationToken cancellationToken, params string[] parts)
    {
        var request = new StringBuilder().Append('*').Append(parts.Length).Append("\r\n");
        foreach (var part in parts)
        {
            request.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToString()), cancellationToken);
    }

    /// <summary>
    /// Sends one command and returns its reply's first line as the server wrote it (<c>+PONG</c>, <c>-NOAUTH …</c>,
    /// <c>-BUSY …</c>), an error included: for asking what a server answers where a client library would refuse, queue
    /// or retry. Only for replies of one line; the connection is for such probes.
    /// </summary>
    public async Task<string> ReplyLineAsync(CancellationToken cancellationToken, params string[] parts)
    {
        await WriteAsync(cancellationToken, parts);
        return await ReadLineAsync(cancellationToken);
    }

    /// <summary>A reply that is text (an <c>INFO</c> section, <c>CLUSTER NODES</c>).</summary>
    public async Task<string> TextAsync(CancellationToken cancellationToken, params string[] parts) =>
        (await SendAsync(cancellationToken, parts)) as string ?? "";

    private async Task<object?> ReadAsync(CancellationToken cancellationToken)
    {
        var line = await ReadLineAsync(cancellationToken);
        var payload = line[1..];
        switch (line[0])
        {
            case '+':
                return payload;
            case '-':
                throw new RespErrorException(payload);
            case ':':
                return long.Parse(payload, CultureInfo.InvariantCulture);
            case '$':
                var length = int.Parse(payload, CultureInfo.InvariantCulture);
                if (length < 0)
                {
                    return null;
                }
                var bytes = new byte[length + 2];
                await _input.ReadExactlyAsync(bytes, cancellationToken);
                return Encoding.UTF8.GetString(bytes, 0, length);
            case '*':
                var count = int.Parse(payload, CultureInfo.InvariantCulture);
                if (count < 0)
                {
                    return null;
                }
                var items = new List<object?>(count);
                for (var i = 0; i < count; i++)
                {
                    items.Add(await ReadAsync(cancellationToken));
                }
                return items;
            default:
                throw new InvalidDataException($"Not a RESP2 reply: '{line}'.");
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            if (await _input.ReadAsync(one, cancellationToken) == 0)
            {
                throw new IOException("The server closed the connection.");
            }
            if (one[0] == '\n' && line.Length > 0 && line[^1] == '\r')
            {
                return line.ToString(0, line.Length - 1);
            }
            line.Append((char)one[0]);
        }
    }

    /// <summary>Closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _input.DisposeAsync();
        _tcp.Dispose();
    }
}
