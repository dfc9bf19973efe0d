using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace ShopReference.Valkey.Scripting;

/// <summary>
/// The one Lua loader: a script embedded as a <c>.lua</c> file beside the class that uses it, sent as
/// <c>EVALSHA</c> (one round trip, the script body never travels again) and re-sent as <c>EVAL</c> only when
/// the server answers <c>NOSCRIPT</c> (after a restart, failover or <c>SCRIPT FLUSH</c>), which also reloads it.
/// </summary>
public sealed class ValkeyScript
{
    private static readonly ConcurrentDictionary<string, ValkeyScript> Cache = new(StringComparer.Ordinal);

    private ValkeyScript(string name, string body)
    {
        Name = name;
        Body = body;
        Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(body));
    }

    /// <summary>The script's file name without <c>.lua</c>.</summary>
    public string Name { get; }
    /// <summary>The Lua source, sent once when the server does not know its SHA-1.</summary>
    public string Body { get; }
    /// <summary>The SHA-1 of the body, as <c>EVALSHA</c> takes it.</summary>
    public byte[] Sha1 { get; }

    /// <summary>Loads <c>{name}.lua</c> embedded in the assembly of <typeparamref name="TOwner"/>.</summary>
    public static ValkeyScript Load<TOwner>(string name) => Cache.GetOrAdd(typeof(TOwner).Assembly.GetName().Name + "/" + name, _ =>
    {
        var assembly = typeof(TOwner).Assembly;
        var resource = assembly.GetManifestResourceNames().SingleOrDefault(r => r.EndsWith("." + name + ".lua", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"No embedded script '{name}.lua' in {assembly.GetName().Name}.");
        using var stream = assembly.GetManifestResourceStream(resource)!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return new ValkeyScript(name, reader.ReadToEnd());
    });

    /// <summary>Runs the script by SHA-1, sending the body once if the server answers NOSCRIPT (after a restart or failover).</summary>
    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync database, RedisKey[] keys, RedisValue[] values, CommandFlags flags = CommandFlags.None)
    {
        try
        {
            return await database.ScriptEvaluateAsync(Sha1, keys, values, flags).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(Body, keys, values, flags).ConfigureAwait(false);
        }
    }
}
