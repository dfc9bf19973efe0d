using System.Net.Sockets;

namespace ShopReference.Hosting;

/// <summary>
/// A protocol-level readiness probe for Valkey/Redis: AUTH then PING, answered <c>+PONG</c>.
/// A TCP connect alone proves nothing here, because the orchestrator's proxy accepts connections
/// before the server behind it is listening.
/// </summary>
public static class RespProbe
{
    /// <summary>True when the server answers PING (after AUTH) with PONG.</summary>
    public static async Task<bool> PingAsync(string host, int port, string? password, CancellationToken cancellationToken)
    {
        try
        {
            await using var client = await RespClient.ConnectAsync(host, port, password, cancellationToken);
            return await client.SendAsync(cancellationToken, "PING") is "PONG";
        }
        catch (Exception ex) when (ex is SocketException or IOException or RespErrorException)
        {
            return false; // not listening yet, closed on us, or refused the password (WRONGPASS, LOADING …)
        }
    }
}
