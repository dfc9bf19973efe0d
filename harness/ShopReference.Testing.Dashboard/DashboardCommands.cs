namespace ShopReference.Testing.Dashboard;

/// <summary>The dashboard commands the tour runs, in order, with the input a user would give.</summary>
public static class DashboardCommands
{
    /// <summary>The resource of simulated shoppers, which the tour starts first so the commands and meters show a shop at work.</summary>
    public const string Shoppers = "shoppers";

    /// <summary>The commands, after the shoppers have started.</summary>
    public static readonly IReadOnlyList<(string Resource, string Command, IReadOnlyDictionary<string, string>? Inputs)> Tour =
    [
        ("valkey", "Keys, memory and slow commands", null),
        ("catalog", "Expire a hot key and fire a burst", null),
        ("rate-limit", "Burst a client past its limit", null),
        ("cart-session", "Count live sessions", null),
        ("analytics", "Replay the last 100 events", null),
        ("analytics", "Rebuild leaderboards from PostgreSQL", null),
    ];

    /// <summary>An image's name for a command: "Count live sessions" → "count-live-sessions".</summary>
    public static string FileName(string command) =>
        string.Join('-', command.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(word => new string([.. word.Where(char.IsLetterOrDigit)])).Where(word => word.Length > 0));
}
