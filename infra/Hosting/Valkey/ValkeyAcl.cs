namespace ShopReference.Hosting;

/// <summary>
/// One Valkey ACL user per service: its own key prefix and channels, plus exactly the shared keys it must touch, and
/// no administrative or dangerous command. The default user keeps the <c>{name}-password</c> parameter of the server
/// and every right: it is the administrator's, not a service's.
/// </summary>
/// <param name="Name">The ACL user name, also the <c>user=</c> of the connection string the service receives.</param>
/// <param name="Password">The generated (or configured) secret parameter holding the user's password.</param>
/// <param name="Permissions">The ACL rules after <c>on &gt;password</c>: key patterns, channels and commands.</param>
public sealed record ValkeyUser(string Name, ParameterResource Password, string Permissions)
{
    /// <summary>The ACL rule line of this user, with its password (the file holding it is readable by its owner only).</summary>
    public string AclLine(string password) => $"user {Name} reset on >{password} {Permissions}";
}

/// <summary>Builds <see cref="ValkeyUser"/>s with the command set every service may run.</summary>
public static class ValkeyAcl
{
    /// <summary>
    /// Commands every service may run, as an allow-list: nothing (<c>-@all</c>), then the data types' own commands
    /// (strings, hashes, lists, sets, sorted sets, HyperLogLog, streams, pub/sub, transactions) less any marked
    /// <c>@admin</c> or <c>@dangerous</c> (SORT, PFDEBUG …), the key commands a cache needs by name, scripts run and
    /// loaded (no SCRIPT FLUSH/KILL, no FUNCTION), and the connection and cluster-discovery commands a client sends.
    /// Not granted: the rest of <c>@keyspace</c> (KEYS, SCAN, RANDOMKEY, OBJECT, which list or inspect other services'
    /// keys), <c>@connection</c> beyond the hand-shake (CLIENT TRACKING, CLIENT LIST, CLIENT KILL), <c>PUBSUB</c> (other
    /// services' channel names), and <c>@admin</c>/<c>@dangerous</c> (FLUSHALL, CONFIG, INFO, DEBUG, ACL, MONITOR …).
    /// A command a later server adds is granted only if it belongs to a data type's own category. Only commands every
    /// supported server knows (Redis 7.0 and later, Valkey 7.2 and later) are named, since a server refuses to start on
    /// a rule that names a command it does not know.
    /// </summary>
    public const string Commands =
        "-@all +@string +@hash +@list +@set +@sortedset +@hyperloglog +@stream +@pubsub +@transaction -@admin -@dangerous -pubsub " +
        "+del +unlink +exists +expire +pexpire +expireat +pexpireat +ttl +pttl +persist +type +time " +
        "+eval +evalsha +eval_ro +evalsha_ro +script|load +script|exists " +
        "+auth +hello +ping +echo +select +client|setname +client|getname +client|id " +
        "+readonly +readwrite +cluster|nodes +cluster|slots +cluster|shards +cluster|info +cluster|myid +command|info";

    /// <summary>
    /// A service's user with a generated password parameter <c>valkey-{name}-password</c>.
    /// </summary>
    /// <param name="builder">The AppHost's builder.</param>
    /// <param name="name">The user name.</param>
    /// <param name="keysAndChannels">Its keys and channels, e.g. <c>~orders:* &amp;orders:*</c>: the caches announce fills
    /// and invalidations over pub/sub, so a cache user without its channel grant fails at <c>SUBSCRIBE</c>.</param>
    /// <param name="more">Further rules after <see cref="Commands"/>, e.g. <c>+scan</c> or a selector such as
    /// <c>(~events:* +xadd)</c> for a shared stream it may only append to.</param>
    public static ValkeyUser AddValkeyUser(this IDistributedApplicationBuilder builder, string name, string keysAndChannels, string more = "") =>
        new(name, builder.AddPasswordParameter($"valkey-{name}-password", $"Password of the Valkey ACL user '{name}' ({keysAndChannels} only)."),
            $"{keysAndChannels} {Commands} {more}".TrimEnd());
}
