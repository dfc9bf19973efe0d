using System.Net.Sockets;
using System.Text;

namespace ShopReference.LocalServers;

/// <summary>
/// A protocol-level readiness probe for Valkey/Redis: AUTH then PING, answered <c>+PONG</c>.
/// A TCP connect alone proves nothing here, because the orchestrator's proxy accepts connections
/// before the server behind it is listening.
/// </summary>
public static class RespProbe
{
    public static async Task<bool> PingAsync(string host, int port, string? password, CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient { NoDelay = true };
            await client.ConnectAsync(host, port, cancellationToken);
            await using var stream = client.GetStream();
            var request = new StringBuilder();
            if (!string.IsNullOrEmpty(password))
            {
                request.Append(Command("AUTH", password));
            }
            request.Append(Command("PING"));
            await stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToString()), cancellationToken);

            var reply = await ReadRepliesAsync(stream, string.IsNullOrEmpty(password) ? 1 : 2, cancellationToken);
            return reply.EndsWith("+PONG\r\n", StringComparison.Ordinal) && !reply.Contains("-ERR") && !reply.Contains("-WRONGPASS");
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            return false;
        }
    }

    // RESP array of bulk strings, so a password with spaces or quotes is sent verbatim.
    private static string Command(params string[] parts)
    {
        var sb = new StringBuilder().Append('*').Append(parts.Length).Append("\r\n");
        foreach (var part in parts)
        {
            sb.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }
        return sb.ToString();
    }

    private static async Task<string> ReadRepliesAsync(Stream stream, int lines, CancellationToken cancellationToken)
    {
        var buffer = new byte[512];
        var text = new StringBuilder();
        while (CountLines(text) < lines)
        {
            var read = await stream.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                break;
            }
            text.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }
        return text.ToString();
    }

    private static int CountLines(StringBuilder text)
    {
        var count = 0;
        for (var i = 1; i < text.Length; i++)
        {
            if (text[i - 1] == '\r' && text[i] == '\n')
            {
                count++;
            }
        }
        return count;
    }
}
