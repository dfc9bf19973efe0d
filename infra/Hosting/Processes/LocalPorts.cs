using System.Net;
using System.Net.Sockets;

namespace ShopReference.Hosting;

/// <summary>
/// Ports for servers whose port must be fixed before they start (a cluster node announces its port to its peers and
/// clients). Taken at random from a band that nobody else hands out:
/// <list type="bullet">
/// <item>below Linux's ephemeral range (32768–60999): a port found free there by binding port 0 can be taken by any
/// outgoing connection's local end before the server binds it, which a busy test run does often;</item>
/// <item>apart from the band Aspire picks service replicas' ports from (<see cref="ReplicaBandFirst"/> and up, which
/// the AppHost gives it). Aspire knows a node's client port (an endpoint) but not its bus port (an argument), and it
/// picks a replica's port long before the replica binds it. In one band, a node that starts meanwhile can take the
/// replica's port, and the replica dies at start;</item>
/// <item>below the fixed bus ports of <c>dotnet run</c>'s cluster (16380 and up).</item>
/// </list>
/// Two processes that pick from the band at once (two test assemblies run side by side) could each find one port free
/// and hand it to two servers. So a picked port is also reserved across processes: this process binds the same number
/// for UDP and keeps it until it exits. The servers bind TCP only, and another picker's UDP bind fails, so it moves on.
/// </summary>
public static class LocalPorts
{
    /// <summary>The band this class picks from (the last one excluded).</summary>
    public const int First = 10_000, Last = 16_000;

    /// <summary>The band the AppHost has Aspire pick service replicas' ports from: above this one, below the ephemeral range.</summary>
    public const int ReplicaBandFirst = 20_000, ReplicaBandLast = 32_767;
    private static readonly HashSet<int> HandedOut = [];

    // The cross-process reservations: held for the life of the process (a few hundred sockets at most in a test run).
    private static readonly List<Socket> Reservations = [];

    /// <summary>
    /// A port no listener holds now and no other process has picked: free for TCP, and reserved for this process by a
    /// UDP bind on the same number.
    /// </summary>
    public static int NextFree()
    {
        for (var attempt = 0; attempt < 400; attempt++)
        {
            var port = Random.Shared.Next(First, Last);
            lock (HandedOut)
            {
                if (!HandedOut.Add(port))
                {
                    continue; // released but promised to a server of this process that may not have bound it yet
                }
            }
            var reservation = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                reservation.Bind(new IPEndPoint(IPAddress.Loopback, port)); // fails when another picker holds it
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                lock (Reservations)
                {
                    Reservations.Add(reservation);
                }
                return port;
            }
            catch (SocketException)
            {
                reservation.Dispose(); // taken or reserved: try another
            }
        }
        throw new InvalidOperationException($"No free loopback port between {First} and {Last}.");
    }
}
