using System.Net;
using System.Net.Sockets;

namespace ShopReference.LocalServers;

/// <summary>
/// Ports for servers whose port must be fixed before they start (a cluster node announces its port to its peers and
/// clients). Taken at random below Linux's ephemeral range (32768–60999): a port found free there by binding port 0
/// can be taken by any outgoing connection's local end before the server binds it, which a busy test run does often.
/// </summary>
public static class LocalPorts
{
    private const int First = 20_000;
    private const int Last = 32_000;
    private static readonly HashSet<int> HandedOut = [];

    public static int NextFree()
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var port = Random.Shared.Next(First, Last);
            lock (HandedOut)
            {
                if (!HandedOut.Add(port))
                {
                    continue; // released but promised to a server of this process that may not have bound it yet
                }
            }
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // taken: try another
            }
        }
        throw new InvalidOperationException($"No free loopback port between {First} and {Last}.");
    }
}
