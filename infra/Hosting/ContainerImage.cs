using Microsoft.Extensions.Configuration;

namespace ShopReference.Hosting;

/// <summary>
/// The image a server runs in Containers mode: <c>Infrastructure:{server}:Image</c> (<c>[registry/]name:tag</c>), else
/// the public image. Tests name local stand-ins built where no registry is reachable (docs/local-mode.md); users keep
/// the public ones.
/// </summary>
public sealed record ContainerImage(string? Registry, string Name, string Tag)
{
    /// <summary>The image configured at <c>Infrastructure:{server}:Image</c>, else <paramref name="fallback"/>.</summary>
    public static ContainerImage From(IConfiguration configuration, string server, string fallback)
    {
        var reference = configuration[$"Infrastructure:{server}:Image"];
        return Parse(string.IsNullOrWhiteSpace(reference) ? fallback : reference.Trim());
    }

    /// <summary>Splits <c>registry/name:tag</c>; a reference without a registry is Docker Hub's.</summary>
    public static ContainerImage Parse(string reference)
    {
        var slash = reference.IndexOf('/');
        // A first part with a dot or a port, or 'localhost', is a registry (as docker reads it); otherwise a local or hub name.
        string? registry = null;
        if (slash > 0 && reference[..slash] is var first && (first.Contains('.') || first.Contains(':') || first == "localhost"))
        {
            registry = first;
            reference = reference[(slash + 1)..];
        }
        var colon = reference.LastIndexOf(':');
        if (colon <= 0 || colon == reference.Length - 1 || reference[colon..].Contains('/'))
        {
            throw new DistributedApplicationException($"Image '{reference}' needs a tag (name:tag).");
        }
        return new(registry, reference[..colon], reference[(colon + 1)..]);
    }
}
