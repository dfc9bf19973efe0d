namespace ShopReference.Hosting;

/// <summary>What a resource last wrote to its console, for a report that must say why it failed.</summary>
public static class ResourceLogs
{
    /// <summary>
    /// The last <paramref name="count"/> lines of the resource's console backlog, read for at most two seconds (the
    /// stream itself never ends).
    /// </summary>
    public static async Task<IReadOnlyList<string>> LastLinesAsync(ResourceLoggerService logs, string resourceId, int count, CancellationToken cancellationToken)
    {
        var lines = new List<string>();
        using var enough = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        enough.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await foreach (var batch in logs.WatchAsync(resourceId).WithCancellation(enough.Token))
            {
                lines.AddRange(batch.Select(line => line.Content));
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
        return lines.TakeLast(count).ToList();
    }
}
