using ShopReference.Hosting;

namespace ShopReference.Testing;

/// <summary>
/// One command on a fresh connection, and the first line of the reply as the server wrote it: past the client
/// library, which may refuse, queue or retry. The connection is the hosting package's <see cref="RespClient"/>.
/// </summary>
public static class RawResp
{
    /// <summary>AUTH with <paramref name="password"/> (whatever it answers), then <paramref name="command"/>; returns the command's first reply line.</summary>
    public static async Task<string> SendAsync(string host, int port, string password, string command, CancellationToken cancellationToken = default)
    {
        await using var client = await RespClient.ConnectAsync(host, port, password: null, cancellationToken);
        await client.ReplyLineAsync(cancellationToken, "AUTH", password);
        return await client.ReplyLineAsync(cancellationToken, command.Split(' '));
    }

    /// <summary><paramref name="command"/> without authenticating; returns its first reply line.</summary>
    public static async Task<string> SendUnauthenticatedAsync(string host, int port, string command, CancellationToken cancellationToken = default)
    {
        await using var client = await RespClient.ConnectAsync(host, port, password: null, cancellationToken);
        return await client.ReplyLineAsync(cancellationToken, command.Split(' '));
    }
}
