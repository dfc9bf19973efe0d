using System.Net.Sockets;
using System.Text;

namespace ShopReference.Testing;

/// <summary>Sends one inline command on a fresh, unauthenticated connection and returns the first reply line.</summary>
public static class RawResp
{
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
