using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace ShopReference.Testing.Dashboard;

/// <summary>A resource as its row on the dashboard's Resources page shows it.</summary>
public sealed record ResourceRow(string Name, string State, bool HealthyIcon, string CellText);

/// <summary>What the dashboard said when a command ended: its notification's title (succeeded, failed) and message.</summary>
public sealed record CommandOutcome(bool Succeeded, string Title, string Message);

/// <summary>
/// The dashboard's Resources page, driven as a user drives it: rows, each row's Actions menu, a command's input dialog,
/// and the notification that reports the command's result. Selectors are the dashboard's own classes and ARIA names
/// (Aspire 13.6); if a dashboard update moves them, this is the one file to change.
/// </summary>
public sealed class ResourcesPage(IPage page)
{
    public async Task OpenAsync()
    {
        await page.GotoAsync("/");
        // The first render waits for the dashboard's connection to the orchestrator, which takes minutes on a starved CPU
        // (a load average of 20 and more on two cores).
        await page.Locator("tr.resource-row").First.WaitForAsync(new() { Timeout = 300_000 });
    }

    /// <summary>Every row: a replicated project has a row per replica (<c>catalog-abcd1234</c>).</summary>
    public async Task<IReadOnlyList<ResourceRow>> RowsAsync()
    {
        var rows = new List<ResourceRow>();
        foreach (var row in await page.Locator("tr.resource-row").AllAsync())
        {
            var name = (await row.Locator("span.resource-name-text").InnerTextAsync()).Trim();
            var state = row.Locator("td[col-index='2']");
            // A healthy running resource shows "Running" beside a green check; an unhealthy one says so in words and a
            // warning icon.
            var healthy = await state.Locator("svg.severity-icon[style*='--success']").CountAsync() > 0;
            // The state is the cell's first line: the dashboard may add a badge below it (seen in CI: "Running\n1", a
            // healthy replica that had logged an error), which is not its state.
            var text = (await state.InnerTextAsync()).Trim();
            rows.Add(new ResourceRow(name, text.Split('\n')[0].Trim(), healthy, text));
        }
        return rows;
    }

    /// <summary>
    /// The resources that are not meant to run on their own, with the state they rest in: the run-once provisioning,
    /// once done, and the shoppers, until someone starts them.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string[]> RestingStates = new Dictionary<string, string[]>
    {
        ["postgres-setup"] = ["Finished"],
        ["shoppers"] = ["Not started", "NotStarted"],
    };

    /// <summary>Waits until every row shows a resource Running and healthy, or resting as <see cref="RestingStates"/> says.</summary>
    public async Task<IReadOnlyList<ResourceRow>> WaitUntilAllHealthyAsync(TimeSpan timeout)
    {
        static bool Ready(ResourceRow row) => row.State == "Running" && row.HealthyIcon
            || RestingStates.TryGetValue(row.Name, out var resting) && resting.Contains(row.State);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var rows = await RowsAsync();
            if (rows.Count > 0 && rows.All(Ready))
            {
                return rows;
            }
            if (DateTime.UtcNow > deadline)
            {
                // The rows that are not ready first: CI prints only the start of a failure message.
                var ready = rows.ToLookup(Ready);
                throw new TimeoutException($"Not all resources Running and healthy within {timeout}. Not ready: " +
                    string.Join("; ", ready[false].Select(r => $"{r.Name} '{r.CellText}'{(r.HealthyIcon ? "" : " (no healthy mark)")}")) +
                    ". Ready: " + string.Join(", ", ready[true].Select(r => r.Name)));
            }
            // The page updates itself as states change; read it again shortly.
            await page.WaitForTimeoutAsync(500);
        }
    }

    /// <summary>
    /// Starts a resource that waits to be started (explicit start) with the Start button of its row, as a user does,
    /// and waits until the row says Running.
    /// </summary>
    public async Task StartResourceAsync(string resource, TimeSpan timeout)
    {
        var row = page.Locator("tr.resource-row").Filter(new() { Has = page.Locator("span.resource-name-text", new() { HasTextString = resource }) }).First;
        var start = row.GetByRole(AriaRole.Button, new() { Name = "Start", Exact = true });
        if (await start.CountAsync() > 0)
        {
            await start.First.DispatchEventAsync("click");
        }
        else
        {
            await OpenMenuAsync(resource);
            await page.GetByRole(AriaRole.Menuitem, new() { Name = "Start", Exact = true }).DispatchEventAsync("click", null, new() { Timeout = 10_000 });
        }
        var deadline = DateTime.UtcNow + timeout;
        while ((await RowsAsync()).FirstOrDefault(r => r.Name == resource) is not { State: "Running" })
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{resource} did not run within {timeout}: " +
                    string.Join("; ", (await RowsAsync()).Where(r => r.Name == resource).Select(r => r.CellText)));
            }
            await page.WaitForTimeoutAsync(500);
        }
    }

    /// <summary>The row name of a replicated project's first replica (<c>catalog-abcd1234</c>), or the resource's own.</summary>
    public async Task<string> ReplicaAsync(string resource) =>
        (await RowsAsync()).Select(r => r.Name).First(name => ResourceName(resource).IsMatch(name));

    /// <summary>The commands in a resource's Actions menu (its first replica's, for a replicated project).</summary>
    public async Task<IReadOnlyList<string>> MenuAsync(string resource)
    {
        await OpenMenuAsync(resource);
        if (await CommandsGroup.CountAsync() > 0)
        {
            await CommandsGroup.DispatchEventAsync("click");
            await page.GetByRole(AriaRole.Menuitem).Last.WaitForAsync();
        }
        var items = await page.GetByRole(AriaRole.Menuitem).AllInnerTextsAsync();
        await page.Keyboard.PressAsync("Escape");
        await page.Keyboard.PressAsync("Escape");
        return [.. items.Select(i => i.Trim()).Where(i => i.Length > 0)];
    }

    /// <summary>
    /// Runs a command from the resource's Actions menu, fills its dialog when it asks for input, and waits for the
    /// notification that ends it.
    /// </summary>
    public async Task<CommandOutcome> RunAsync(string resource, string command, IReadOnlyDictionary<string, string>? inputs = null)
    {
        await DismissNotificationsAsync();
        // Now and then a click on a menu item is lost (the menu still opening): no dialog, no toast, nothing runs. Click
        // again only when nothing at all shows that the command started, so it never runs twice.
        for (var attempt = 1; !await StartAsync(resource, command, inputs); attempt++)
        {
            if (attempt == 3)
            {
                await page.ScreenshotAsync(new() { Path = Path.Combine(Path.GetTempPath(), "dashboard-not-started.png") });
                throw new TimeoutException($"'{command}' on {resource} did not start after {attempt} clicks.");
            }
            await page.Keyboard.PressAsync("Escape");
        }
        var ended = new Regex($"\"{Regex.Escape(command)}\" (succeeded|failed)");
        var entry = await WaitForResultAsync(ended, TimeSpan.FromMinutes(2));
        var title = (await entry.Locator(".notification-entry-message").InnerTextAsync()).Trim();
        var message = await entry.Locator(".notification-entry-content").CountAsync() > 0
            ? (await entry.Locator(".notification-entry-content").InnerTextAsync()).Trim()
            : "";
        return new CommandOutcome(title.EndsWith("succeeded", StringComparison.Ordinal), title, message);
    }

    private async Task<bool> StartAsync(string resource, string command, IReadOnlyDictionary<string, string>? inputs)
    {
        await OpenMenuAsync(resource);
        var item = page.GetByRole(AriaRole.Menuitem, new() { Name = command, Exact = true });
        try
        {
            if (await item.CountAsync() == 0)
            {
                await CommandsGroup.DispatchEventAsync("click", null, new() { Timeout = 10_000 });
            }
            // A click event on the item itself, not a mouse click at its place: the menu can still be moving when the
            // item is found, and a mouse click there once ran the neighbouring "Rebuild" instead.
            await item.DispatchEventAsync("click", null, new() { Timeout = 10_000 });
        }
        catch (TimeoutException e)
        {
            await page.ScreenshotAsync(new() { Path = Path.Combine(Path.GetTempPath(), "dashboard-menu-failure.png") });
            throw new InvalidOperationException($"No enabled '{command}' in {resource}'s Actions menu; it shows: " +
                string.Join(", ", await page.GetByRole(AriaRole.Menuitem).AllInnerTextsAsync()), e);
        }
        if (inputs is not null)
        {
            var dialog = page.Locator("#interactions-input-dialog");
            try
            {
                await dialog.Locator(".interaction-input").First.WaitForAsync(new() { Timeout = 15_000 });
            }
            catch (TimeoutException)
            {
                return false;
            }
            foreach (var (label, value) in inputs)
            {
                var field = dialog.Locator(".interaction-input")
                    .Filter(new() { Has = page.Locator("label", new() { HasTextRegex = new Regex($"^{Regex.Escape(label)}\\b") }) });
                // The field is a web component; the text box is inside its (open) shadow root.
                await field.Locator("fluent-text-input input").FillAsync(value);
            }
            // Leave the last field, so it reports its value (on change) before the dialog is sent.
            await page.Keyboard.PressAsync("Tab");
            await dialog.Locator("footer.interaction-dialog-actions fluent-button[appearance='primary']").DispatchEventAsync("click");
        }
        // A started command shows a toast naming it ("starting", then its result) and an entry in the notification centre.
        var named = new Regex($"\"{Regex.Escape(command)}\" (starting|succeeded|failed)");
        try
        {
            await page.Locator(".fluent-toast-provider").GetByText(named).First.WaitForAsync(new() { Timeout = 20_000 });
            return true;
        }
        catch (TimeoutException)
        {
            var drawer = await OpenNotificationsAsync();
            var started = await drawer.Locator(".notification-entry-message").GetByText(named).CountAsync() > 0;
            await CloseNotificationsAsync();
            return started;
        }
    }

    // A command's end shows as a toast for 5 s and stays in the notification centre, whose drawer shows what was there
    // when it opened. Watch the toasts; look in the centre now and then, in case a toast came and went unseen.
    private async Task<ILocator> WaitForResultAsync(Regex ended, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var toast = page.Locator(".fluent-toast-provider").GetByText(ended).First;
        while (true)
        {
            var toastSeen = false;
            try
            {
                await toast.WaitForAsync(new() { Timeout = 10_000 });
                toastSeen = true;
            }
            catch (TimeoutException)
            {
            }
            var entry = (await OpenNotificationsAsync()).Locator(".notification-entry")
                .Filter(new() { Has = page.Locator(".notification-entry-message", new() { HasTextRegex = ended }) }).First;
            try
            {
                await entry.WaitForAsync(new() { Timeout = toastSeen ? 10_000 : 1_000 });
                return entry;
            }
            catch (TimeoutException) when (DateTime.UtcNow < deadline)
            {
                await CloseNotificationsAsync();
            }
            catch (TimeoutException e)
            {
                var picture = Path.Combine(Path.GetTempPath(), "dashboard-no-result.png");
                await page.ScreenshotAsync(new() { Path = picture });
                throw new TimeoutException($"No result for {ended} within {timeout} (the page then: {picture}); notifications: " +
                    string.Join(" | ", await page.Locator(".notification-entry").AllInnerTextsAsync()), e);
            }
        }
    }

    // The notification centre's drawer, opened from the header's bell; its list is there once it is attached.
    private async Task<ILocator> OpenNotificationsAsync()
    {
        await page.GetByRole(AriaRole.Button, new() { Name = "Notifications" }).ClickAsync();
        var drawer = page.Locator("#NotificationsDialog");
        await drawer.Locator(".notifications-container").WaitForAsync(new() { State = WaitForSelectorState.Attached });
        return drawer;
    }

    // Past a few commands, a resource's menu groups the rest under "Commands".
    private ILocator CommandsGroup => page.GetByRole(AriaRole.Menuitem, new() { Name = "Commands", Exact = true });

    /// <summary>Closes the notification drawer if it is open.</summary>
    public async Task CloseNotificationsAsync()
    {
        // The drawer is in the page only while it is open.
        var drawer = page.Locator("#NotificationsDialog");
        if (await drawer.CountAsync() > 0)
        {
            await drawer.Locator("div[slot='footer'] fluent-button").ClickAsync();
            await drawer.WaitForAsync(new() { State = WaitForSelectorState.Detached });
        }
    }

    // One result in the drawer at a time, so the entry read after a command is that command's.
    private async Task DismissNotificationsAsync()
    {
        await CloseNotificationsAsync();
        var drawer = await OpenNotificationsAsync();
        if (await drawer.Locator(".notification-entry").CountAsync() > 0)
        {
            await drawer.Locator(".notifications-dismiss-all").DispatchEventAsync("click");
            await drawer.Locator(".notification-entry").First.WaitForAsync(new() { State = WaitForSelectorState.Detached });
        }
        await CloseNotificationsAsync();
    }

    private async Task OpenMenuAsync(string resource)
    {
        await CloseNotificationsAsync();
        var row = page.Locator("tr.resource-row")
            .Filter(new() { Has = page.Locator("span.resource-name-text", new() { HasTextRegex = ResourceName(resource) }) }).First;
        await row.GetByRole(AriaRole.Button, new() { Name = "Actions", Exact = true }).ClickAsync();
        await page.GetByRole(AriaRole.Menuitem).First.WaitForAsync();
    }

    // A resource's own row, or its replicas' (name-suffix); never a longer name that starts the same.
    private static Regex ResourceName(string resource) => new($"^{Regex.Escape(resource)}(-[a-z0-9]{{8}})?$");
}
