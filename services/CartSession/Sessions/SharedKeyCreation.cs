using Microsoft.AspNetCore.DataProtection.KeyManagement;
using StackExchange.Redis;

namespace ShopReference.CartSession.Sessions;

/// <summary>
/// Data Protection's key manager with one change: a new key is created under a lock in Valkey, and not at all when
/// another replica has just created one that serves. Data Protection loads its ring when the host starts and creates a
/// key when it finds none, so two replicas starting together on an empty ring each created their own
/// (DataProtectionKeyRingTests starts two together and counts the keys). Each then caches a ring that may lack the
/// other's key, and after the first 2 minutes it no longer reloads the ring for an unknown key, so a cookie one replica
/// protected is read by the other as a new session, until the next refresh a day later.
/// </summary>
public sealed class SharedKeyCreation(IKeyManager inner, IConnectionMultiplexer valkey) : IKeyManager
{
    public const string CreationLock = "cart:dataprotection:creating";
    private static readonly TimeSpan LockLifetime = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5); // Data Protection's own allowance between servers
    private static readonly TimeSpan PropagationWindow = TimeSpan.FromDays(2); // how early Data Protection replaces a key

    // Synchronous because Data Protection calls it synchronously, under its own lock, while it builds the ring.
    public IKey CreateNewKey(DateTimeOffset activationDate, DateTimeOffset expirationDate)
    {
        var database = valkey.GetDatabase();
        var token = Guid.NewGuid().ToString("N");
        var deadline = DateTimeOffset.UtcNow + 2 * LockLifetime; // a holder that died frees the lock within its lifetime
        while (true)
        {
            if (Serving(activationDate) is { } existing)
            {
                return existing; // Data Protection re-reads the ring after this call, so it finds the key there too
            }
            if (database.LockTake(CreationLock, token, LockLifetime))
            {
                try
                {
                    return Serving(activationDate) ?? inner.CreateNewKey(activationDate, expirationDate);
                }
                finally
                {
                    database.LockRelease(CreationLock, token);
                }
            }
            if (DateTimeOffset.UtcNow > deadline)
            {
                throw new TimeoutException($"{CreationLock} stayed held for {(2 * LockLifetime).TotalSeconds:0} s and no Data Protection key appeared.");
            }
            Thread.Sleep(100); // another replica is creating the key: look again
        }
    }

    // A key that does the job the requested one would: usable from the requested activation on, and not replaced soon.
    private IKey? Serving(DateTimeOffset activationDate) => inner.GetAllKeys()
        .Where(key => !key.IsRevoked && key.ActivationDate <= activationDate + ClockSkew && key.ExpirationDate > activationDate + PropagationWindow)
        .MaxBy(key => key.ActivationDate);

    public IReadOnlyCollection<IKey> GetAllKeys() => inner.GetAllKeys();

    public CancellationToken GetCacheExpirationToken() => inner.GetCacheExpirationToken();

    public void RevokeKey(Guid keyId, string? reason = null) => inner.RevokeKey(keyId, reason);

    public void RevokeAllKeys(DateTimeOffset revocationDate, string? reason = null) => inner.RevokeAllKeys(revocationDate, reason);
}
