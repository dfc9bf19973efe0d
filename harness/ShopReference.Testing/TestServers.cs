namespace ShopReference.Testing;

/// <summary>One Valkey and one PostgreSQL for a test collection or a benchmark run, started side by side.</summary>
public sealed class TestServers : IAsyncDisposable
{
    private TestServers(TestValkey valkey, TestPostgresServer postgres)
    {
        Valkey = valkey;
        Postgres = postgres;
    }

    /// <summary>One process, or a cluster when <see cref="TestValkey.TopologyVariable"/> asks for one.</summary>
    public TestValkey Valkey { get; }
    public TestPostgresServer Postgres { get; }

    public static async Task<TestServers> StartAsync()
    {
        var valkey = TestValkey.StartAsync();
        var postgres = TestPostgresServer.StartAsync();
        try
        {
            await Task.WhenAll(valkey, postgres);
        }
        catch
        {
            // Never leave the one that did start running behind a failed start.
            if (valkey.IsCompletedSuccessfully) await valkey.Result.DisposeAsync();
            if (postgres.IsCompletedSuccessfully) await postgres.Result.DisposeAsync();
            throw;
        }
        return new TestServers(valkey.Result, postgres.Result);
    }

    public async ValueTask DisposeAsync()
    {
        await Valkey.DisposeAsync();
        await Postgres.DisposeAsync();
    }
}
