using System.Globalization;
using ShopReference.Valkey.Scripting;
using StackExchange.Redis;

namespace ShopReference.Valkey.Caching;

/// <summary>
/// The cross-process lock of one cache entry's load: taken with a fencing token in one step, renewed while the load
/// runs (so a slow origin or a starved process keeps it), and released only by its holder. A holder that dies stops
/// renewing, and the lease lapses after <see cref="SingleFlightOptions.LockLease"/>. Renewal uses <c>SET … IFEQ</c> where
/// the server has it (Valkey 8.1+) and a compare-and-expire script elsewhere; release uses <c>DELIFEQ</c> (Valkey 9)
/// or a compare-and-delete script.
/// </summary>
internal sealed class FlightLeases(IDatabase database, SingleFlightOptions options)
{
    private TimeSpan RenewEvery => options.LockLease / 4;
    private static readonly TimeSpan FenceLifetime = TimeSpan.FromDays(1); // fences only need to outlive a lease
    private readonly ValkeyScript _acquire = ValkeyScript.Load<SingleFlightCache>("acquire");
    private readonly ValkeyScript _renew = ValkeyScript.Load<SingleFlightCache>("renew");
    private readonly ValkeyScript _release = ValkeyScript.Load<SingleFlightCache>("release");
    private int _setIfEqual = -1; // -1 unknown, 0 no, 1 yes (SET … IFEQ, Valkey 8.1)
    private int _deleteIfEqual = -1; // -1 unknown, 0 no, 1 yes (DELIFEQ, Valkey 9)

    public static string LockKey(string key) => key + ":lock";
    public static string FenceKey(string key) => key + ":fence";

    /// <summary>Takes the lock of <paramref name="key"/>; null when another holder has it. Renewal starts at once.</summary>
    public async Task<Lease?> TryAcquireAsync(string key)
    {
        var token = Guid.NewGuid().ToString("N");
        var fence = (long)await _acquire.EvaluateAsync(database, [LockKey(key), FenceKey(key)],
            [token, (long)options.LockLease.TotalMilliseconds, (long)FenceLifetime.TotalMilliseconds]).ConfigureAwait(false);
        return fence == 0 ? null : new Lease(this, key, token, fence.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Whether anyone holds the lock of <paramref name="key"/> now.</summary>
    public Task<bool> IsHeldAsync(string key) => database.KeyExistsAsync(LockKey(key));

    private async Task<bool> RenewAsync(string lockKey, string token)
    {
        var lease = (long)options.LockLease.TotalMilliseconds;
        if (Volatile.Read(ref _setIfEqual) != 0)
        {
            try
            {
                var renewed = await database.ExecuteAsync("SET", lockKey, token, "IFEQ", token, "PX", lease).ConfigureAwait(false);
                Volatile.Write(ref _setIfEqual, 1);
                return !renewed.IsNull;
            }
            catch (RedisServerException ex) when (Volatile.Read(ref _setIfEqual) == -1 && ex.Message.Contains("syntax", StringComparison.OrdinalIgnoreCase))
            {
                Volatile.Write(ref _setIfEqual, 0); // an older server: the script from now on
            }
        }
        return (long)await _renew.EvaluateAsync(database, [lockKey], [token, lease]).ConfigureAwait(false) == 1;
    }

    private async Task ReleaseAsync(string lockKey, string token)
    {
        if (Volatile.Read(ref _deleteIfEqual) != 0)
        {
            try
            {
                await database.ExecuteAsync("DELIFEQ", lockKey, token).ConfigureAwait(false);
                Volatile.Write(ref _deleteIfEqual, 1);
                return;
            }
            // An older server does not know it; a user whose ACL does not grant it may not run it: the script from now on.
            catch (RedisServerException ex) when (Volatile.Read(ref _deleteIfEqual) == -1 &&
                (ex.Message.StartsWith("NOPERM", StringComparison.Ordinal) || ex.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase)))
            {
                Volatile.Write(ref _deleteIfEqual, 0);
            }
        }
        await _release.EvaluateAsync(database, [lockKey], [token]).ConfigureAwait(false);
    }

    /// <summary>A held lock: its fencing token for the fill, renewed in the background until disposed (released).</summary>
    public sealed class Lease : IAsyncDisposable
    {
        private readonly FlightLeases _owner;
        private readonly string _lockKey;
        private readonly string _token;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _renewal;

        internal Lease(FlightLeases owner, string key, string token, string fence)
        {
            _owner = owner;
            _lockKey = LockKey(key);
            _token = token;
            Fence = fence;
            _renewal = RenewUntilStoppedAsync();
        }

        public string Fence { get; }

        // Renews four times per lease, so a process starved for most of a lease still keeps its lock.
        private async Task RenewUntilStoppedAsync()
        {
            var interval = _owner.RenewEvery;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    await Task.Delay(interval, _stop.Token).ConfigureAwait(false);
                    if (!await _owner.RenewAsync(_lockKey, _token).ConfigureAwait(false))
                    {
                        return; // someone else holds it now: our fill will be refused by the fence
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // Valkey is unreachable: the fill will fail too, and the lease lapses by itself.
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _renewal.ConfigureAwait(false);
            _stop.Dispose();
            await _owner.ReleaseAsync(_lockKey, _token).ConfigureAwait(false);
        }
    }
}
