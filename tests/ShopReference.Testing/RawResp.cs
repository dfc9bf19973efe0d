using System.Net.Sockets;
using System.Text;

namespace ShopReference.Testing;

/// <summary>Sends one inline command on a fresh connection and returns the first reply line (past the client library, which may refuse or queue).</summary>
public static class RawResp
{
    /// <summary>AUTH with <paramref name="password"/>, then <paramref name="command"/>; returns the command's first reply line.</summary>
    public static async Task<string> SendAsync(string host, int port, string password, string command, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(host, port, cancellationToken);
        await using var stream = client.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes($"AUTH {password}\r\n{command}\r\n"), cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await reader.ReadLineAsync(cancellationToken); // +OK of AUTH
        return await reader.ReadLineAsync(cancellationToken) ?? "";
    }

    public static async Task<string> SendUnauthenticatedAsync(string host, int port, string command, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(host, port, cancellationToken);
        await using var stream = client.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes(command + "\r\n"), cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadLineAsync(cancellationToken) ?? "";
    }
}
