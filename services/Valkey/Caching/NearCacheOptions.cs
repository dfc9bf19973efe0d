using System.ComponentModel.DataAnnotations;

namespace ShopReference.Valkey.Caching;

/// <summary>Tuning of the in-process layer in front of <see cref="SingleFlightCache"/> (<see cref="NearCache"/>).</summary>
public sealed record NearCacheOptions : IValidatableObject
{
    /// <summary>Off: every read goes to Valkey, as if the near cache were not there (a read path that must see each write at once).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>The most entries kept in process; past it the least recently read of a few sampled entries goes.</summary>
    [Range(1, int.MaxValue)]
    public int MaxEntries { get; init; } = 10_000;

    /// <summary>The most payload bytes (plus keys and bookkeeping) kept in process.</summary>
    [Range(1, long.MaxValue)]
    public long MaxBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// The longest an entry is served from process memory. Invalidations end it within milliseconds; this only bounds a
    /// change the cache's scripts never announced (a key written by hand in <c>valkey-cli</c>).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan TimeToLive { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often this process publishes a probe on the invalidation channel and expects it back. Receiving its own probe
    /// proves the subscription was live when the probe was sent, so every invalidation after it reaches this process.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00")]
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// With no probe back for this long the channel is treated as broken (a gap the client library did not report):
    /// the near cache is flushed and nothing is kept in it until a probe comes back.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00")]
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The rule across fields that attributes cannot state: a probe must have time to come back.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (ProbeTimeout <= ProbeInterval)
        {
            yield return new ValidationResult($"{nameof(ProbeTimeout)} ({ProbeTimeout}) must be longer than {nameof(ProbeInterval)} ({ProbeInterval}).",
                [nameof(ProbeTimeout)]);
        }
    }
}
