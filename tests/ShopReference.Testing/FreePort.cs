using System.Net;
using System.Net.Sockets;

namespace ShopReference.Testing;

/// <summary>A TCP port nobody listens on right now, so parallel test runs do not collide.</summary>
public static class FreePort
{
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
