using System.Security.Cryptography;
using System.Text;

namespace ShopReference.Valkey;

/// <summary>
/// The one key schema (docs/keys.md): <c>{service}:{entity}:{id}</c>. Ids are parsed values or hashes, never raw
/// user input, so a key's length and alphabet are bounded. A key written as <c>{service}:{entity}:{{id}}</c> puts its
/// id in a hash tag, so every key a Lua script touches for that id lands in one cluster slot.
/// </summary>
public static class KeySchema
{
    /// <summary><c>{service}:{entity}:{id}</c> for a numeric id.</summary>
    public static string Key(string service, string entity, long id) => $"{service}:{entity}:{id}";

    /// <summary>The same key with its id as a hash tag, for keys that one script touches together.</summary>
    public static string TaggedKey(string service, string entity, string tag) => $"{service}:{entity}:{{{Validate(tag)}}}";

    /// <summary>A tagged key with a suffix: <c>{service}:{entity}:{{tag}}:{suffix}</c>, in the same slot as the tag's other keys.</summary>
    public static string TaggedKey(string service, string entity, string tag, string suffix) => $"{TaggedKey(service, entity, tag)}:{suffix}";

    /// <summary>A key for an opaque, user-supplied token (session id, API key): its SHA-256, never the token itself.</summary>
    public static string HashedKey(string service, string entity, string token) => $"{service}:{entity}:{Sha256Hex(token)}";

    /// <summary>The lower-case hex SHA-256 of a token: how user-supplied tokens appear in keys and tables.</summary>
    public static string Sha256Hex(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string Validate(string tag)
    {
        if (tag.Length is 0 or > 128 || tag.Any(c => c is '{' or '}' or ' ' || char.IsControl(c)))
        {
            throw new ArgumentException("A hash tag is 1-128 characters without braces, spaces or control characters.", nameof(tag));
        }
        return tag;
    }
}
