using ShopReference.Testing;

namespace ShopReference.Bench.Scenarios;

/// <summary>A benchmark scenario: contenders measured in one run against the servers the harness started.</summary>
public interface IScenario
{
    string Name { get; }
    string Description { get; }
    Task<string> RunAsync(TestServers servers, BenchOptions options);
}

/// <param name="Only">When set, a scenario runs only the contenders whose name contains it.</param>
public sealed record BenchOptions(TimeSpan Warmup, TimeSpan Duration, int[] ConcurrencyLevels, string? Only = null);
