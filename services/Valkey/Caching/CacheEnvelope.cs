using System.Buffers.Text;
using System.Text;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// How an entry is stored: one string <c>{version}:{softExpiryMs}:{flag}:{payload}</c>, so a hit is a single
/// <c>GET</c> of one bulk reply (a hash read costs more on the server and on the client), and the fill script can
/// read the version and the flag with one pattern match. The flag is <c>0</c> for a value, <c>1</c> for "not found"
/// and <c>2</c> for a tombstone: "deleted at the origin", which reads as not found and refuses loads that started earlier.
/// </summary>
public static class CacheEnvelope
{
    /// <summary>A decoded entry: its origin version, soft expiry (Unix ms), whether it caches a "not found", its payload, and whether it is a tombstone.</summary>
    public readonly record struct Entry(long Version, long SoftExpiryMs, bool Negative, ReadOnlyMemory<byte> Payload, bool Deleted = false);

    /// <summary>Encodes an origin value with its soft expiry (or as a tombstone) in the format the scripts store.</summary>
    public static byte[] Encode(OriginValue value, long softExpiryMs, bool deleted = false)
    {
        var flag = deleted ? 2 : value.Payload is null ? 1 : 0;
        var header = Encoding.ASCII.GetBytes($"{value.Version}:{softExpiryMs}:{flag}:");
        var payload = value.Payload ?? [];
        var bytes = new byte[header.Length + payload.Length];
        header.CopyTo(bytes, 0);
        payload.CopyTo(bytes, header.Length);
        return bytes;
    }

    /// <summary>Decodes a stored entry; false for bytes that are not an envelope (a key written by something else).</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> stored, out Entry entry)
    {
        entry = default;
        var span = stored.Span;
        if (!Utf8Parser.TryParse(span, out long version, out var used) || span.Length <= used || span[used] != (byte)':')
            return false;
        var offset = used + 1;
        if (!Utf8Parser.TryParse(span[offset..], out long soft, out used) || span.Length <= offset + used || span[offset + used] != (byte)':')
            return false;
        offset += used + 1;
        if (span.Length < offset + 2 || span[offset + 1] != (byte)':')
            return false;
        var flag = span[offset];
        if (flag is not ((byte)'0' or (byte)'1' or (byte)'2'))
            return false;
        entry = new Entry(version, soft, flag != (byte)'0', stored[(offset + 2)..], Deleted: flag == (byte)'2');
        return true;
    }
}
