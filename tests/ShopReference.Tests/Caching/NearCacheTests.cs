using System.Text;
using ShopReference.Testing;
using ShopReference.Tests.Infrastructure;
using ShopReference.Valkey.Caching;
using StackExchange.Redis;

namespace ShopReference.Tests.Caching;

/// <summary>
/// The near cache against a real Valkey, two "processes" (two connections, two caches) on one channel: what one writes,
/// the other must stop serving from memory once the announcement arrives, and a gap of any kind must empty it.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class NearCacheTests(ServersFixture fixture)
{
    private static readonly CacheEntryOptions Entry = new() { TimeToLive = TimeSpan.FromMinutes(5) };
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string NewKey() => $"test:product:{{{Guid.NewGuid():N}}}";
    private static OriginValue Version(long version) => new(Encoding.UTF8.GetBytes($"v{version}"), version);
    private static Func<CancellationToken, Task<OriginValue>> MustNotLoad { get; } = _ => throw new InvalidOperationException("must not reach the origin");

    private sealed class Instance(ConnectionMultiplexer connection, SingleFlightCache flights, NearCache near) : IAsyncDisposable
    {
        public NearCache Cache { get; } = near;
        public ConnectionMultiplexer Connection { get; } = connection;

        public async ValueTask DisposeAsync()
        {
            await Cache.DisposeAsync();
            await flights.DisposeAsync();
            await Connection.DisposeAsync();
        }
    }

    private static async Task<Instance> StartAsync(string connectionString, string channel, NearCacheOptions? options = null)
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(connectionString);
        var flights = new SingleFlightCache(connection, new SingleFlightOptions { Channel = channel });
        var near = new NearCache(flights, connection, options ?? new NearCacheOptions { ProbeInterval = TimeSpan.FromMilliseconds(100), ProbeTimeout = TimeSpan.FromSeconds(1) });
        await Eventually.UntilAsync(() => near.IsTrusted, Wait, "the near cache never received its own probe", cancellationToken: Ct);
        return new Instance(connection, flights, near);
    }

    private static string NewChannel() => "test:filled:" + Guid.NewGuid().ToString("N");

    // A read keeps a copy unless an announcement for its key raced it (this process's own fill can): read until one is kept.
    private static Task KeepAsync(Instance instance, string key) => Eventually.UntilAsync(
        async () => (await instance.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct)).Outcome == CacheOutcome.HitLocal,
        Wait, "no read was ever kept in the near cache", TimeSpan.FromMilliseconds(10), Ct);

    [Fact]
    public async Task A_write_on_one_instance_is_never_read_stale_on_another_once_its_invalidation_arrived()
    {
        var channel = NewChannel();
        var key = NewKey();
        await using var writer = await StartAsync(fixture.Valkey.ConnectionString, channel);
        Assert.True(await writer.Cache.SetAsync(key, Version(0), Entry));
        await using var reader = await StartAsync(fixture.Valkey.ConnectionString, channel);
        // Only the writer changes the key, once per version, so the k-th announcement the reader sees is version k's.
        var arrived = 0L;
        reader.Cache.Invalidated += changed =>
        {
            if (changed.Key == key)
            {
                Interlocked.Increment(ref arrived);
            }
        };
        const int Writes = 300;
        using var writing = new CancellationTokenSource();
        var staleReads = 0L;
        var localHits = 0L;
        var reads = 0L;

        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!writing.IsCancellationRequested)
            {
                var announced = Interlocked.Read(ref arrived); // before the read: the read must not return anything older
                var read = await reader.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct);
                Interlocked.Increment(ref reads);
                if (read.Version < announced)
                {
                    Interlocked.Increment(ref staleReads);
                }
                if (read.Outcome == CacheOutcome.HitLocal)
                {
                    Interlocked.Increment(ref localHits);
                }
            }
        })).ToArray();
        for (var version = 1; version <= Writes; version++)
        {
            Assert.True(await writer.Cache.SetAsync(key, Version(version), Entry));
            // A few reads between writes, so most of them are local hits that an invalidation has to end.
            var before = Interlocked.Read(ref reads);
            await Eventually.UntilAsync(() => Interlocked.Read(ref reads) >= before + 5, Wait, "the readers stopped", TimeSpan.FromMilliseconds(1), Ct);
        }
        await Eventually.UntilAsync(() => Interlocked.Read(ref arrived) == Writes, Wait, "not every announcement arrived", cancellationToken: Ct);
        await writing.CancelAsync();
        await Task.WhenAll(readers);

        Assert.Equal(0, staleReads);
        Assert.True(localHits > Writes, $"only {localHits} of {reads} reads were local hits");
        Assert.Equal(Writes, (await reader.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct)).Version);
        Assert.Equal(0, reader.Cache.Inner.Counters.OriginLoads);
    }

    [Theory]
    [InlineData("write-through")]
    [InlineData("insert")]
    [InlineData("delete")]
    [InlineData("evict")]
    public async Task Every_kind_of_change_drops_the_other_instances_copy(string change)
    {
        var channel = NewChannel();
        var key = NewKey();
        await using var writer = await StartAsync(fixture.Valkey.ConnectionString, channel);
        await using var reader = await StartAsync(fixture.Valkey.ConnectionString, channel);
        Assert.True(await writer.Cache.SetAsync(key, Version(1), Entry));
        await KeepAsync(reader, key);
        var dropped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        reader.Cache.Invalidated += changed =>
        {
            // The change's own announcement: version 1's, published before the reader kept its copy, may arrive late
            // (on a cluster it crosses the cluster bus) and must not be taken for it.
            if (changed.Key == key && changed.Version != 1)
            {
                dropped.TrySetResult();
            }
        };

        switch (change)
        {
            case "write-through": Assert.True(await writer.Cache.SetAsync(key, Version(2), Entry)); break;
            case "insert": Assert.True(await writer.Cache.SetAsync(key, Version(2), Entry, inserted: true)); break;
            case "delete": await writer.Cache.DeleteAsync(key); break;
            case "evict": Assert.True(await writer.Cache.RemoveAsync(key)); break;
        }
        await dropped.Task.WaitAsync(Wait, Ct);
        var after = await reader.Cache.GetOrLoadAsync(key, _ => Task.FromResult(Version(3)), Entry, Ct);

        Assert.NotEqual(CacheOutcome.HitLocal, after.Outcome);
        var expected = change switch { "delete" => 0L, "evict" => 3L, _ => 2L }; // evicted: loaded again from the origin
        Assert.Equal((expected, change != "delete"), (after.Version, after.Found));
    }

    [Fact]
    public async Task The_writing_instance_reads_its_own_write_at_once()
    {
        var key = NewKey();
        await using var instance = await StartAsync(fixture.Valkey.ConnectionString, NewChannel());
        Assert.True(await instance.Cache.SetAsync(key, Version(1), Entry));
        await KeepAsync(instance, key);

        Assert.True(await instance.Cache.SetAsync(key, Version(2), Entry));
        var read = await instance.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct);

        Assert.Equal((CacheOutcome.Hit, 2L), (read.Outcome, read.Version));
    }

    [Fact]
    public async Task A_dropped_connection_flushes_the_near_cache_and_nothing_stale_is_served_across_the_gap()
    {
        var channel = NewChannel();
        var key = NewKey();
        fixture.RequireOneValkeyProcess("a proxy breaks or stalls its connections");
        await using var proxy = new TcpFaultProxy(fixture.Valkey.Port);
        await using var writer = await StartAsync(fixture.Valkey.ConnectionString, channel);
        await using var reader = await StartAsync(
            $"127.0.0.1:{proxy.Port},password={fixture.Valkey.Password},abortConnect=false,connectTimeout=1000,syncTimeout=1000,asyncTimeout=1000", channel);
        Assert.True(await writer.Cache.SetAsync(key, Version(1), Entry));
        await KeepAsync(reader, key);
        var flushes = reader.Cache.Counters.Flushes;

        proxy.Cut();
        await Eventually.UntilAsync(() => !reader.Cache.IsTrusted && reader.Cache.Count == 0, Wait, "the lost connection did not flush the near cache", cancellationToken: Ct);
        Assert.True(await writer.Cache.SetAsync(key, Version(2), Entry)); // its announcement cannot reach the reader
        var servedOld = 0;
        for (var i = 0; i < 5; i++)
        {
            try
            {
                servedOld += (await reader.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct)).Version < 2 ? 1 : 0;
            }
            catch (Exception ex) when (ShopReference.Valkey.Resilience.ValkeyFailures.IsUnavailable(ex))
            {
                // Valkey unreachable is the right answer while cut; an old copy from memory is not.
            }
        }
        proxy.Restore();
        await Eventually.UntilAsync(() => reader.Cache.IsTrusted, Wait, "the near cache never trusted the channel again", cancellationToken: Ct);
        var afterGap = await reader.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct);

        Assert.Equal(0, servedOld);
        Assert.True(reader.Cache.Counters.Flushes > flushes);
        Assert.Equal((CacheOutcome.Hit, 2L), (afterGap.Outcome, afterGap.Version));
    }

    [Fact]
    public async Task A_silent_stall_is_caught_by_the_probe_and_flushes_the_near_cache()
    {
        var channel = NewChannel();
        var key = NewKey();
        fixture.RequireOneValkeyProcess("a proxy breaks or stalls its connections");
        await using var proxy = new TcpFaultProxy(fixture.Valkey.Port);
        await using var writer = await StartAsync(fixture.Valkey.ConnectionString, channel);
        // Default client timeouts (5 s): the client library sees nothing wrong before the probe's 1 s timeout does.
        await using var reader = await StartAsync($"127.0.0.1:{proxy.Port},password={fixture.Valkey.Password},abortConnect=false", channel);
        Assert.True(await writer.Cache.SetAsync(key, Version(1), Entry));
        await KeepAsync(reader, key);

        proxy.Stall(); // no reset, no error: only silence
        Assert.True(await writer.Cache.SetAsync(key, Version(2), Entry)); // its announcement waits in the stalled pipe
        await Eventually.UntilAsync(() => !reader.Cache.IsTrusted && reader.Cache.Count == 0, Wait, "the stall was never noticed", cancellationToken: Ct);
        var probesLost = reader.Cache.Counters.ProbesLost;
        proxy.Restore();
        await Eventually.UntilAsync(() => reader.Cache.IsTrusted, Wait, "the near cache never trusted the channel again", cancellationToken: Ct);
        var afterStall = await reader.Cache.GetOrLoadAsync(key, MustNotLoad, Entry, Ct);

        Assert.True(probesLost >= 1, "the flush did not come from the probe");
        Assert.Equal(2, afterStall.Version);
    }

    [Theory]
    [InlineData(500, 64 * 1024 * 1024, 100)] // bounded by entries
    [InlineData(10_000, 256 * 1024, 1024)] // bounded by bytes (about 230 entries of 1 KiB)
    public async Task The_near_cache_stays_within_its_bounds_under_a_scan_of_10000_products(int maxEntries, long maxBytes, int payloadBytes)
    {
        await using var instance = await StartAsync(fixture.Valkey.ConnectionString, NewChannel(), new NearCacheOptions
        {
            MaxEntries = maxEntries,
            MaxBytes = maxBytes,
            ProbeInterval = TimeSpan.FromMilliseconds(100),
            // This test is about bounds and the hot key's place, not the channel probe: a starved process (CI's load
            // average reaches 20-50) must not distrust its channel and answer the last read from Valkey ('hit').
            ProbeTimeout = TimeSpan.FromSeconds(30),
        });
        var prefix = Guid.NewGuid().ToString("N");
        var payload = new byte[payloadBytes];
        var hot = $"test:product:{{{prefix}-hot}}";
        await instance.Cache.GetOrLoadAsync(hot, _ => Task.FromResult(new OriginValue(payload, 1)), Entry, Ct);
        var (largestCount, largestBytes) = (0, 0L);

        for (var id = 0; id < 10_000; id++)
        {
            await instance.Cache.GetOrLoadAsync($"test:product:{{{prefix}-{id}}}", _ => Task.FromResult(new OriginValue(payload, 1)), Entry, Ct);
            largestCount = Math.Max(largestCount, instance.Cache.Count);
            largestBytes = Math.Max(largestBytes, instance.Cache.Bytes);
            if (id % 10 == 0)
            {
                await instance.Cache.GetOrLoadAsync(hot, MustNotLoad, Entry, Ct); // a hot key among the scan
            }
        }

        Assert.InRange(largestCount, 1, maxEntries);
        Assert.InRange(largestBytes, 1, maxBytes);
        Assert.True(instance.Cache.Count >= Math.Min(maxEntries, maxBytes / (payloadBytes + 200)) / 2, $"only {instance.Cache.Count} entries kept");
        Assert.Equal(CacheOutcome.HitLocal, (await instance.Cache.GetOrLoadAsync(hot, MustNotLoad, Entry, Ct)).Outcome);
    }
}
