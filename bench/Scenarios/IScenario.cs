using ShopReference.Testing;

namespace ShopReference.Bench.Scenarios;

/// <summary>A benchmark scenario: contenders measured in one run against the servers the harness started.</summary>
public interface IScenario
{
    string Name { get; }
    string Description { get; }
    Task<string> RunAsync(TestServers servers, BenchOptions options);
}

public sealed record BenchOptions(TimeSpan Warmup, TimeSpan Duration, int[] ConcurrencyLevels);
