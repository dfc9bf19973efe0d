namespace ShopReference.Testing;

/// <summary>
/// Waits on a condition, never on a fixed sleep: polls until it holds, and fails with <paramref name="failure"/>
/// once the timeout passes. The one place tests wait for something asynchronous to happen.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan DefaultPoll = TimeSpan.FromMilliseconds(50);

    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string failure,
        TimeSpan? poll = null, CancellationToken cancellationToken = default) =>
        UntilAsync(condition, timeout, () => failure, poll, cancellationToken);

    /// <param name="failure">Computed at the timeout: what was still wrong then (which processes, which rows).</param>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> failure,
        TimeSpan? poll = null, CancellationToken cancellationToken = default)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var tick = new PeriodicTimer(poll ?? DefaultPoll);
        while (!await condition())
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"{failure()} (waited {timeout.TotalSeconds:0.#} s)");
            }
            await tick.WaitForNextTickAsync(cancellationToken);
        }
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string failure,
        TimeSpan? poll = null, CancellationToken cancellationToken = default) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, failure, poll, cancellationToken);

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, Func<string> failure,
        TimeSpan? poll = null, CancellationToken cancellationToken = default) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, failure, poll, cancellationToken);
}
