using System.Buffers.Text;
using System.Text;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// How an entry is stored: one string <c>{version}:{softExpiryMs}:{negative}:{payload}</c>, so a hit is a single
/// <c>GET</c> of one bulk reply (a hash read costs more on the server and on the client), and the fill script can
/// read the version with one pattern match.
/// </summary>
public static class CacheEnvelope
{
    public readonly record struct Entry(long Version, long SoftExpiryMs, bool Negative, ReadOnlyMemory<byte> Payload);

    public static byte[] Encode(OriginValue value, long softExpiryMs)
    {
        var header = Encoding.ASCII.GetBytes($"{value.Version}:{softExpiryMs}:{(value.Payload is null ? 1 : 0)}:");
        var payload = value.Payload ?? [];
        var bytes = new byte[header.Length + payload.Length];
        header.CopyTo(bytes, 0);
        payload.CopyTo(bytes, header.Length);
        return bytes;
    }

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
        entry = new Entry(version, soft, span[offset] == (byte)'1', stored[(offset + 2)..]);
        return true;
    }
}
