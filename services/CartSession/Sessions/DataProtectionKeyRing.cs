using Microsoft.AspNetCore.DataProtection.KeyManagement;
using StackExchange.Redis;

namespace ShopReference.CartSession.Sessions;

/// <summary>
/// One Data Protection key for every replica, agreed before any of them serves. The key ring lives in Valkey, but Data
/// Protection creates a key on first use when it finds none, and caches the ring it read: two replicas that start
/// together can each create their own key, and then neither reads a cookie the other protected until its ring is
/// refreshed, hours later (a preferences cookie written by one replica read as a fresh session by the other, seen in
/// CI on a cluster). So at start one replica, holding a short lock in Valkey, creates the key if there is none; the
/// others wait until it is in the ring.
/// </summary>
public sealed class DataProtectionKeyRing(IKeyManager keys, IConnectionMultiplexer valkey, ILogger<DataProtectionKeyRing> logger)
    : StartupInitializer(logger)
{
    public const string CreationLock = "cart:dataprotection:creating";
    private static readonly TimeSpan KeyLifetime = TimeSpan.FromDays(90); // Data Protection's default
    private static readonly TimeSpan WaitForCreator = TimeSpan.FromSeconds(60);

    protected override string Work => "Agreeing on the Data Protection key";

    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + WaitForCreator;
        while (!HasUsableKey())
        {
            if (await valkey.GetDatabase().StringSetAsync(CreationLock, Environment.ProcessId, TimeSpan.FromSeconds(30), When.NotExists))
            {
                if (!HasUsableKey()) // another replica may have finished between the check and the lock
                {
                    var now = DateTimeOffset.UtcNow;
                    keys.CreateNewKey(activationDate: now, expirationDate: now + KeyLifetime);
                }
                return;
            }
            if (DateTimeOffset.UtcNow > deadline)
            {
                throw new TimeoutException($"No Data Protection key appeared within {WaitForCreator.TotalSeconds:0} s while another replica held {CreationLock}.");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken); // another replica is creating it: look again
        }
    }

    // A key Data Protection would take as its default now: active, not revoked, and not about to expire.
    private bool HasUsableKey()
    {
        var now = DateTimeOffset.UtcNow;
        return keys.GetAllKeys().Any(key => !key.IsRevoked && key.ActivationDate <= now && key.ExpirationDate > now.AddDays(2));
    }
}
