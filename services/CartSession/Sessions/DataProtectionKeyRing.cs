using Microsoft.AspNetCore.DataProtection;
using ShopReference.Valkey.Resilience;

namespace ShopReference.CartSession.Sessions;

/// <summary>
/// A replica is ready only once its Data Protection key ring is loaded from Valkey (creating the one shared key if there
/// is none, through <see cref="SharedKeyCreation"/>). Data Protection's own load at start swallows a failure and tries
/// again on a request's path with a blocking read; if that read fails there, the session middleware takes the cookie
/// for a new session without a word (preferences answered as the defaults).
/// </summary>
public sealed class DataProtectionKeyRing(IDataProtectionProvider protection, ILogger<DataProtectionKeyRing> logger)
    : StartupInitializer(logger)
{
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromSeconds(90);

    protected override string Work => "Loading the Data Protection key ring";

    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + GiveUpAfter;
        var protector = protection.CreateProtector(nameof(DataProtectionKeyRing));
        while (true)
        {
            try
            {
                // A round trip loads and caches the ring with its default key; it is read again when it expires.
                protector.Unprotect(protector.Protect([1]));
                return;
            }
            // Blocking reads with a 2 s timeout: on a busy machine one can time out, which must not leave the replica
            // unready for good.
            catch (Exception ex) when (IsValkeyUnavailable(ex) && DateTimeOffset.UtcNow < deadline)
            {
                logger.LogWarning("Valkey could not serve the Data Protection key ring ({Message}); trying again.", ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
            }
        }
    }

    private static bool IsValkeyUnavailable(Exception exception) =>
        ValkeyFailures.IsUnavailable(exception) || exception.InnerException is { } inner && IsValkeyUnavailable(inner);
}
