using System.Collections.Concurrent;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// The near cache's in-process store: bounded both in entries and in payload bytes, each entry with an expiry. When an
/// insert goes over a bound, entries are evicted by sampling (the least recently read of a few random ones, as Valkey
/// evicts), so eviction costs O(1) per entry and no global ordering is kept on the read path.
/// </summary>
internal sealed class LocalEntries(int maxEntries, long maxBytes, TimeProvider time)
{
    private const int Samples = 5;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly object _evictionGate = new();
    private long _bytes;

    public int Count => _entries.Count;
    public long Bytes => Interlocked.Read(ref _bytes);

    public sealed class Entry(CacheRead value, long size, long expiresAt)
    {
        public CacheRead Value { get; } = value;
        public long Size { get; } = size;
        public long ExpiresAt { get; } = expiresAt;
        public long LastRead;

        /// <summary>The payload decoded by the first typed read of this copy, so later hits skip decoding (racing decoders are harmless).</summary>
        public object? Decoded;
    }

    public bool TryGet(string key, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Entry? value)
    {
        if (_entries.TryGetValue(key, out var entry))
        {
            var now = time.GetTimestamp();
            if (now < entry.ExpiresAt)
            {
                entry.LastRead = now;
                value = entry;
                return true;
            }
            Remove(key, entry);
        }
        value = null;
        return false;
    }

    public void Set(string key, CacheRead value, TimeSpan timeToLive)
    {
        var size = (value.Payload?.Length ?? 0) + key.Length * 2L + 64; // payload, key and bookkeeping
        if (size > maxBytes)
        {
            return;
        }
        var now = time.GetTimestamp();
        var entry = new Entry(value, size, now + (long)(timeToLive.TotalSeconds * time.TimestampFrequency)) { LastRead = now };
        _entries.AddOrUpdate(key, _ =>
        {
            Interlocked.Add(ref _bytes, size);
            return entry;
        }, (_, old) =>
        {
            Interlocked.Add(ref _bytes, size - old.Size);
            return entry;
        });
        if (_entries.Count > maxEntries || Interlocked.Read(ref _bytes) > maxBytes)
        {
            EvictOverflow();
        }
    }

    /// <summary>Removes the key's entry unless it holds <paramref name="version"/> or newer (any entry when it is negative).</summary>
    public bool RemoveOlderThan(string key, long version)
    {
        while (_entries.TryGetValue(key, out var entry))
        {
            if (version >= 0 && entry.Value.Version >= version)
            {
                return false;
            }
            if (_entries.TryRemove(new KeyValuePair<string, Entry>(key, entry)))
            {
                Interlocked.Add(ref _bytes, -entry.Size);
                return true;
            }
        }
        return false;
    }

    public void Remove(string key)
    {
        if (_entries.TryRemove(key, out var entry))
        {
            Interlocked.Add(ref _bytes, -entry.Size);
        }
    }

    public void Clear()
    {
        foreach (var key in _entries.Keys)
        {
            Remove(key);
        }
    }

    private void Remove(string key, Entry entry)
    {
        if (_entries.TryRemove(new KeyValuePair<string, Entry>(key, entry)))
        {
            Interlocked.Add(ref _bytes, -entry.Size);
        }
    }

    // One evictor at a time; readers and writers never wait for it. It evicts down to a little under the bounds, so the
    // snapshot of the keys it samples from (O(entries)) is taken once per a few hundred evictions, not once per insert.
    private void EvictOverflow()
    {
        if (!Monitor.TryEnter(_evictionGate))
        {
            return;
        }
        try
        {
            var random = Random.Shared;
            var entriesTarget = Math.Max(1, maxEntries - Math.Max(1, maxEntries / 32));
            var bytesTarget = maxBytes - maxBytes / 32;
            IReadOnlyList<string> keys = [];
            var missed = true;
            while (_entries.Count > entriesTarget || Interlocked.Read(ref _bytes) > bytesTarget)
            {
                if (missed) // first round, or every sampled key of the snapshot was gone: take a fresh one
                {
                    keys = [.. _entries.Keys]; // a snapshot: sampling from it is enough
                    if (keys.Count == 0)
                    {
                        return;
                    }
                }
                string? victim = null;
                var oldest = long.MaxValue;
                for (var i = 0; i < Samples; i++)
                {
                    var key = keys[random.Next(keys.Count)];
                    if (_entries.TryGetValue(key, out var candidate) && candidate.LastRead < oldest)
                    {
                        (victim, oldest) = (key, candidate.LastRead);
                    }
                }
                missed = victim is null;
                if (victim is not null)
                {
                    Remove(victim);
                }
            }
        }
        finally
        {
            Monitor.Exit(_evictionGate);
        }
    }
}
