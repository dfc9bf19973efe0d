namespace ShopReference.EndToEndTests;

/// <summary>Reads the AppHost's replica directory as the gateway does: how many replicas of a service it lists now.</summary>
internal static class ReplicaDirectory
{
    public static int Listed(string file, string service)
    {
        try
        {
            return ShopReference.Contracts.Routing.ReplicaDirectoryFile.Read(file).GetValueOrDefault(service)?.Length ?? 0;
        }
        catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException)
        {
            return 0; // between the AppHost's writes (a rename), or not written yet
        }
    }
}
