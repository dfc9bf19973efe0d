using System.Globalization;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// What the cache publishes on its channel for every change of an entry, from the same script as the change (so no
/// change goes unannounced): <c>"{version} {key}"</c>. The version is the one now stored, or <see cref="Removed"/>
/// when the entry was evicted or the item deleted, after which no copy of any version may stay. Control messages
/// (<see cref="NearCache"/>'s flush and probes) start with <c>!</c> instead.
/// </summary>
public readonly record struct Announcement(string Key, long Version)
{
    /// <summary>The version announced when an entry was removed rather than filled.</summary>
    public const long Removed = -1;

    /// <summary>Reads a message from the cache channel; false for anything that is not an announcement (a probe, a flush).</summary>
    public static bool TryParse(string? message, out Announcement announcement)
    {
        announcement = default;
        var space = message?.IndexOf(' ') ?? -1;
        if (space <= 0 || !long.TryParse(message.AsSpan(0, space), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var version))
        {
            return false;
        }
        announcement = new Announcement(message![(space + 1)..], version);
        return true;
    }
}
