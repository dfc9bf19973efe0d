namespace ShopReference.DashboardTour;

/// <summary>The dashboard commands the tour runs, in order, with the input a user would give.</summary>
public static class DashboardCommands
{
    public const string SimulateShoppers = "Simulate shoppers";
    public const string StopShoppers = "Stop shoppers";

    /// <summary>The shopper dialog's inputs, by label.</summary>
    public static IReadOnlyDictionary<string, string> Shoppers(int shoppers, int seconds) =>
        new Dictionary<string, string> { ["Shoppers"] = $"{shoppers}", ["Seconds"] = $"{seconds}" };

    /// <summary>Shoppers first, so the other commands' results and the meters show a shop at work.</summary>
    public static readonly IReadOnlyList<(string Resource, string Command, IReadOnlyDictionary<string, string>? Inputs)> Tour =
    [
        ("rate-limit", SimulateShoppers, Shoppers(16, 120)),
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
