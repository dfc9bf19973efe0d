using System.Text.Json;

namespace ShopReference.Contracts.Routing;

/// <summary>
/// The run-mode replica directory: the file the AppHost keeps equal to each service's healthy replicas and the gateway
/// balances over, request by request. One JSON object, a service's name to its replicas' addresses:
/// <c>{"catalog":["http://localhost:41234","http://localhost:41235"]}</c>. Written whole or not at all.
/// </summary>
public static class ReplicaDirectoryFile
{
    /// <summary>The gateway's setting naming the file; absent, the gateway resolves by service discovery alone.</summary>
    public const string Setting = "Gateway:Replicas:File";

    /// <summary><see cref="Setting"/> as an environment variable, the way the AppHost hands it over.</summary>
    public const string EnvironmentVariable = "Gateway__Replicas__File";

    /// <summary>The file's name in the folder the AppHost makes for it.</summary>
    public const string FileName = "replicas.json";

    /// <summary>The directory's text.</summary>
    public static string Serialize(IReadOnlyDictionary<string, string[]> replicas) => JsonSerializer.Serialize(replicas);

    /// <summary>Replaces the file by a rename, so a reader sees the old directory or the new one, never half of one.</summary>
    public static void Write(string file, string serialized)
    {
        var temporary = file + ".tmp";
        File.WriteAllText(temporary, serialized);
        File.Move(temporary, file, overwrite: true);
    }

    /// <summary>The directory as written; throws <see cref="IOException"/> or <see cref="JsonException"/> when there is none to read.</summary>
    public static Dictionary<string, string[]> Read(string file) =>
        JsonSerializer.Deserialize<Dictionary<string, string[]>>(File.ReadAllText(file)) ?? [];
}
