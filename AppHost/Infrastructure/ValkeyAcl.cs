namespace ShopReference.AppHost.Infrastructure;

/// <summary>
/// One Valkey ACL user per service (docs/security.md has the matrix): its own key prefix and channels, plus exactly
/// the shared keys it must touch, and no administrative or dangerous command. The default user keeps the
/// <c>valkey-password</c> parameter and every right: it is the administrator's, not a service's.
/// </summary>
public sealed record ValkeyUser(string Name, ParameterResource Password, string Permissions)
{
    /// <summary>The ACL rule line of this user, with its password (the file holding it is readable by its owner only).</summary>
    public string AclLine(string password) => $"user {Name} reset on >{password} {Permissions}";
}

public static class ValkeyAcl
{
    /// <summary>
    /// Commands every service may run: everything but the <c>@admin</c> and <c>@dangerous</c> categories (FLUSHALL,
    /// CONFIG, KEYS, INFO, DEBUG, SHUTDOWN, ACL administration, MONITOR …), scripting limited to running and loading
    /// scripts (no SCRIPT FLUSH/KILL, no FUNCTION), and no SCAN or RANDOMKEY, which would list other services' key names.
    /// </summary>
    public const string Commands =
        "+@all -@admin -@dangerous -@scripting +eval +evalsha +eval_ro +evalsha_ro +script|load +script|exists -scan -randomkey";

    /// <summary>XADD to the analytics stream and nothing else on it, for the services that publish events.</summary>
    public const string PublishEvents = "(~analytics:events:* +xadd)";

    /// <summary>The four service users, each with a generated password parameter (<c>valkey-{user}-password</c>).</summary>
    public static IReadOnlyDictionary<string, ValkeyUser> CreateUsers(IDistributedApplicationBuilder builder)
    {
        ValkeyUser User(string name, string keysAndChannels, string more = "") =>
            new(name, builder.AddPasswordParameter($"valkey-{name}-password", $"Password of the Valkey ACL user '{name}' (keys {name}:* only)."), $"{keysAndChannels} {Commands} {more}".TrimEnd());
        return new Dictionary<string, ValkeyUser>(StringComparer.Ordinal)
        {
            // Cache entries, locks, fences, the fill channel, output cache and HybridCache; publishes product views.
            // SCAN only for the change feed's reset after a slot had to be created (every cached product goes: the
            // changes before the new slot were never seen); without it that reset fails and the feed cannot start.
            ["catalog"] = User("catalog", "~catalog:* &catalog:*", $"+scan {PublishEvents}"),
            // Carts, checkout claims, the session blob and the Data Protection key ring; SCAN only to count live
            // sessions (its key names are SHA-256 hashes); publishes cart and order events.
            ["cart"] = User("cart", "~cart:*", $"+scan {PublishEvents}"),
            ["analytics"] = User("analytics", "~analytics:* &analytics:*"),
            ["ratelimit"] = User("ratelimit", "~ratelimit:*"),
        };
    }
}
