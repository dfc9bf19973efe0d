using ShopReference.Testing.Dashboard;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// The dashboard in a real browser (headless Debian Chromium), as a newcomer sees it after <c>dotnet run</c>: every
/// resource Running and healthy (the provisioning finished, the shoppers waiting for their Start), the shoppers
/// started from their row, and every command the AppHost declares present in its resource's menu and succeeding
/// when clicked. The commands are read from the app model, so a new command is tested without a change here.
/// </summary>
[Collection(DashboardCollection.Name)]
public sealed class DashboardBrowserTests(DashboardAppFixture fixture)
{
    [Fact]
    public async Task Every_resource_runs_healthy_and_every_command_is_in_its_menu_and_succeeds_when_clicked()
    {
        Assert.True(DashboardBrowser.ChromiumInstalled, $"No Chromium at {DashboardBrowser.ChromiumPath}: apt-get install chromium (.ci/run does).");
        // Every replica healthy in the orchestrator first (the app's start waits for one per resource), so a failure below
        // is the dashboard's, not a replica still starting on a starved CPU.
        foreach (var (resource, replicas) in Replicas())
        {
            await fixture.Shop.WaitForHealthyInstancesAsync(resource, replicas, TimeSpan.FromMinutes(3));
        }
        await using var browser = await DashboardBrowser.OpenAsync(fixture.Shop.DashboardUrl);
        var page = new ResourcesPage(browser.Page);
        await page.OpenAsync();

        var rows = await page.WaitUntilAllHealthyAsync(TimeSpan.FromMinutes(2));
        Assert.All(ShopApp.Resources, resource => Assert.Contains(rows, row => row.Name == resource || row.Name.StartsWith(resource + "-", StringComparison.Ordinal)));

        var commands = DeclaredCommands();
        Assert.True(commands.Count >= 6, $"only {commands.Count} commands declared");
        foreach (var resource in commands.Select(c => c.Resource).Distinct())
        {
            var menu = await page.MenuAsync(resource);
            Assert.All(commands.Where(c => c.Resource == resource), c => Assert.Contains(c.Command, menu));
        }

        // The shoppers wait to be started; their Start button runs them, and the commands below then act on a shop at work.
        Assert.Contains(rows, row => row.Name == DashboardCommands.Shoppers);
        await page.StartResourceAsync(DashboardCommands.Shoppers, TimeSpan.FromMinutes(2));
        foreach (var (resource, command) in commands)
        {
            var outcome = await page.RunAsync(resource, command);
            Assert.True(outcome.Succeeded, $"{resource}: {outcome.Title}: {outcome.Message}");
            await page.CloseNotificationsAsync();
        }
    }

    // The orchestrator's own commands on every resource or project: start, stop, restart, and rebuild (which rebuilds
    // and restarts a project: not a demo command, and a test that clicked it would restart the services under test).
    private static readonly string[] Lifecycle =
        [KnownResourceCommands.StartCommand, KnownResourceCommands.StopCommand, KnownResourceCommands.RestartCommand, "rebuild"];

    // Each resource of the app and how many replicas the AppHost gives it.
    private IEnumerable<(string Resource, int Replicas)> Replicas() =>
        fixture.Shop.App.Services.GetRequiredService<DistributedApplicationModel>().Resources
            .Where(r => ShopApp.Resources.Contains(r.Name))
            .Select(r => (r.Name, r.Annotations.OfType<ReplicaAnnotation>().SingleOrDefault()?.Replicas ?? 1));

    // Every command the AppHost adds, by resource.
    private List<(string Resource, string Command)> DeclaredCommands() =>
        [.. fixture.Shop.App.Services.GetRequiredService<DistributedApplicationModel>().Resources
            .Where(r => ShopApp.Resources.Contains(r.Name))
            .SelectMany(r => r.Annotations.OfType<ResourceCommandAnnotation>()
                .Where(c => !Lifecycle.Contains(c.Name))
                .Select(c => (r.Name, c.DisplayName)))];
}

/// <summary>The app with its dashboard, for the browser test.</summary>
public sealed class DashboardAppFixture : ShopAppFixture
{
    protected override bool Dashboard => true;
}
