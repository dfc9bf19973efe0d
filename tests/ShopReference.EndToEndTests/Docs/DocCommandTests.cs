using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using ShopReference.Testing;

namespace ShopReference.EndToEndTests.Docs;

/// <summary>
/// Every command the README and docs/ give a reader, checked against the code. The ones that talk to a running app
/// (<c>curl</c>, <c>redis-cli</c>/<c>valkey-cli</c>, <c>psql</c>, a Valkey command typed into the CLI) run with bash against
/// the test app, which is the AppHost started the way <c>dotnet run</c> starts it. Only what a reader would change
/// is changed: the ports (the test app's are free ones, not 5000, 6380 and 5433) and the placeholders
/// (<c>&lt;valkey-password&gt;</c>…). The others start the app, the suite, a benchmark or a deployment: their project,
/// launch profile and benchmark scenario must exist.
/// <para>
/// It runs on an app of its own: the README's write changes product 42's price, which the shared app's cart test reads
/// (CI's first pass once ran the cart test after it).
/// </para>
/// </summary>
[Collection(DocCommandsCollection.Name)]
public sealed partial class DocCommandTests(ShopAppFixture fixture)
{
    private static readonly string Root = DocCommands.RepositoryRoot();
    private static readonly IReadOnlyList<DocCommand> Commands = DocCommands.Extract(Root);
    private static readonly string[] AgainstTheApp = ["curl", "redis-cli", "valkey-cli", "psql", "GET"];

    [Fact]
    public void The_docs_hold_commands_of_every_kind_and_each_is_run_here_or_names_a_project_profile_and_scenario_that_exist()
    {
        var scenarios = BenchScenarios();
        var problems = new List<string>();
        foreach (var command in Commands)
        {
            foreach (var line in command.Lines.Where(l => DocCommands.ProgramOf(l) is { } program && !AgainstTheApp.Contains(program)))
            {
                problems.AddRange(CheckStatically(line, scenarios).Select(problem => $"{command.Source}: {problem} in `{line}`"));
            }
        }

        problems.AddRange(DocCommands.Unaccounted(Root));
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        // The extraction finds what a reader sees: the README's write, the cart walk-through, the CLI attach lines.
        Assert.Contains(Commands, c => c.Source.StartsWith("README.md", StringComparison.Ordinal) && c.Text.Contains("-X PUT", StringComparison.Ordinal));
        Assert.Contains(Commands, c => c.Source.StartsWith("docs/cart.md", StringComparison.Ordinal) && c.Text.Contains("checkout", StringComparison.Ordinal));
        Assert.Contains(Commands, c => c.Program == "psql");
        Assert.Contains(Commands, c => c.Program == "GET");
        Assert.Contains(Commands, c => c.Text.Contains("bench -- ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_command_that_talks_to_a_running_app_succeeds_against_it_as_written()
    {
        var shop = fixture.Shop;
        var ct = TestContext.Current.CancellationToken;
        var gateway = shop.App.GetEndpoint("rate-limit", "http");
        var valkey = shop.App.GetEndpoint("valkey", "tcp");
        var postgres = new NpgsqlConnectionStringBuilder(await shop.App.GetConnectionStringAsync("catalogdb", ct));
        var cluster = TestValkey.RequestedTopology == ValkeyTopology.Cluster;
        using var client = shop.GatewayAsNewClient(out var address); // the docs' requests get a quota of their own
        var workDirectory = Directory.CreateTempSubdirectory("shopref-doc-commands-").FullName; // curl's cookie jar lands here

        var ran = 0;
        var failures = new List<string>();
        foreach (var command in Commands.Where(c => c.Lines.Any(l => AgainstTheApp.Contains(DocCommands.ProgramOf(l) ?? ""))))
        {
            if (!cluster && command.Text.Contains("cluster nodes", StringComparison.Ordinal))
            {
                continue; // the docs give it for a cluster (`--Infrastructure:Valkey:Topology=Cluster`); CI's cluster pass runs it
            }
            // A block's app-starting line (`dotnet run …`) is what the test app already did: its other lines run.
            var lines = command.Lines.Where(l => DocCommands.ProgramOf(l) is not { } program || AgainstTheApp.Contains(program))
                .Select(line => AsRunHere(line, cluster)).Select(line => line
                .Replace("http://localhost:5000", $"http://localhost:{gateway.Port}", StringComparison.Ordinal)
                .Replace("localhost:5000", $"localhost:{gateway.Port}", StringComparison.Ordinal)
                .Replace("-p 6380", $"-p {valkey.Port}", StringComparison.Ordinal)
                .Replace("-h localhost -p 5433", $"-h {postgres.Host} -p {postgres.Port}", StringComparison.Ordinal)
                .Replace("<valkey-password>", shop.ValkeyPassword, StringComparison.Ordinal)
                .Replace("<postgres-password>", shop.PostgresPassword, StringComparison.Ordinal)
                .Replace("<catalog-admin-key>", shop.CatalogAdminKey, StringComparison.Ordinal)
                .Replace("<operator-key>", shop.OperatorKey, StringComparison.Ordinal));
            var result = await BashAsync(string.Join("\n", lines), workDirectory, address, ct);
            ran++;
            if (Verdict(command, result) is { } failure)
            {
                failures.Add($"{command.Source}: {failure}\n  command: {command.Text}\n  stdout: {Cut(result.Stdout)}\n  stderr: {Cut(result.Stderr)}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {ran} commands failed:\n{string.Join("\n", failures)}");
        Assert.True(ran >= 10, $"only {ran} commands ran: the extraction lost some");
    }

    /// <summary>
    /// What a reader does with a line that is not a whole command: types a command into the CLI they attached
    /// (`PING`, `select 1`), or types a Valkey command from the text into that CLI. A trailing comment is dropped.
    /// </summary>
    private static string AsRunHere(string line, bool cluster)
    {
        line = TrailingComment().Replace(line, "");
        if (DocCommands.ProgramOf(line) == "GET")
        {
            // Typed into the session README's attach line opens; on a cluster the docs attach with -c (follow MOVED).
            var arguments = string.Join(' ', line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(a => $"'{a}'"));
            return $"REDISCLI_AUTH='<valkey-password>' redis-cli {(cluster ? "-c " : "")}-p 6380 GET {arguments}";
        }
        if (InteractiveValkeyCli().IsMatch(line))
        {
            return line + " <<< PING";
        }
        if (DocCommands.ProgramOf(line) == "psql" && !line.Contains(" -c ", StringComparison.Ordinal))
        {
            return line + " <<< 'select 1 as attached'";
        }
        return line;
    }

    private static string? Verdict(DocCommand command, BashResult result)
    {
        if (result.TimedOut)
        {
            return "did not finish within 60 s";
        }
        if (result.ExitCode != 0)
        {
            return $"exit code {result.ExitCode}";
        }
        var statuses = HttpStatus().Matches(result.Stderr).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var requests = command.Lines.Where(l => !l.TrimStart().StartsWith("dotnet", StringComparison.Ordinal)).Sum(l => Regex.Matches(l, @"\bcurl\b").Count);
        if (statuses.Count < requests)
        {
            return $"{requests} requests written, {statuses.Count} answered";
        }
        // The docs promise an answer (2xx); a redirect or an error is a command that no longer does what the page says.
        if (statuses.FirstOrDefault(s => s is < 200 or >= 300) is var bad and not 0)
        {
            return $"HTTP {bad}";
        }
        if (CliError().Match(result.Stdout + "\n" + result.Stderr) is { Success: true } error)
        {
            return $"the server answered an error: {error.Value.Trim()}";
        }
        if (command.Program is "redis-cli" or "valkey-cli" or "GET" && result.Stdout.Trim().Length == 0)
        {
            return "no reply";
        }
        return null;
    }

    private static async Task<BashResult> BashAsync(string script, string workDirectory, string clientAddress, CancellationToken cancellationToken)
    {
        // curl as the reader runs it, plus two things: the status of each response on stderr (for the verdict), and the
        // forwarded address the test app's gateway trusts from loopback, so these requests spend no other test's quota.
        const string prelude = """
            set -eo pipefail
            curl() { command curl -sS -H "X-Forwarded-For: $DOC_CLIENT" --write-out '%{stderr}HTTP %{http_code}\n' "$@"; }
            command -v valkey-cli >/dev/null || valkey-cli() { redis-cli "$@"; }
            """;
        var info = new ProcessStartInfo("bash", ["-c", prelude + "\n" + script])
        {
            WorkingDirectory = workDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.Environment["DOC_CLIENT"] = clientAddress;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            return new BashResult(-1, await stdout, await stderr, TimedOut: true);
        }
        return new BashResult(process.ExitCode, await stdout, await stderr, TimedOut: false);
    }

    private static IEnumerable<string> CheckStatically(string line, IReadOnlySet<string> scenarios)
    {
        var program = DocCommands.ProgramOf(line);
        switch (program)
        {
            case "dotnet":
                if (Option(line, "--project") is { } project)
                {
                    var folder = Path.Combine(Root, project);
                    if (!Directory.Exists(folder) || Directory.GetFiles(folder, "*.csproj").Length == 0)
                    {
                        yield return $"no project at {project}";
                    }
                    else if (Option(line, "--launch-profile") is { } profile && !LaunchProfiles(folder).Contains(profile))
                    {
                        yield return $"{project} has no launch profile '{profile}'";
                    }
                    if (project == "bench" && Regex.Match(line, @" -- (\S+)") is { Success: true } scenario
                        && !scenario.Groups[1].Value.StartsWith('<') && !scenarios.Contains(scenario.Groups[1].Value))
                    {
                        yield return $"no benchmark scenario '{scenario.Groups[1].Value}' (there are: {string.Join(", ", scenarios.Order())})";
                    }
                }
                else if (!Regex.IsMatch(line, @"\bdotnet (test|run|user-secrets|build|pack|add package|tool install)\b"))
                {
                    yield return "a dotnet command this test does not know";
                }
                break;
            case "azd":
                if (!File.Exists(Path.Combine(Root, "azure.yaml")))
                {
                    yield return "no azure.yaml for azd";
                }
                break;
            case "aspire":
                if (!File.Exists(Path.Combine(Root, "aspire.config.json")))
                {
                    yield return "no aspire.config.json for the aspire CLI";
                }
                break;
            case "ss":
                break; // lists the ports of a `dotnet run` on the reader's machine (troubleshooting); nothing of the app's to check
            case "docker" or "podman":
                break; // Containers mode only, and this machine has no container engine (LOCAL-ORCHESTRATION-NOTES)
            default:
                yield return $"'{program}' is a program this test neither runs nor checks: teach it one or the other";
                break;
        }
    }

    private static string? Option(string line, string name) =>
        Regex.Match(line, $@"{Regex.Escape(name)}\s+(\S+)") is { Success: true } match ? match.Groups[1].Value : null;

    private static HashSet<string> LaunchProfiles(string projectFolder)
    {
        var path = Path.Combine(projectFolder, "Properties", "launchSettings.json");
        if (!File.Exists(path))
        {
            return [];
        }
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        return [.. json.RootElement.GetProperty("profiles").EnumerateObject().Select(p => p.Name)];
    }

    // The scenario names, read from bench/'s sources (this suite does not reference the benchmark).
    private static HashSet<string> BenchScenarios() =>
        [.. Directory.GetFiles(Path.Combine(Root, "bench"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .SelectMany(f => ScenarioName().Matches(File.ReadAllText(f)).Select(m => m.Groups[1].Value))];

    private static string Cut(string text) => text.Length <= 600 ? text.Trim() : text[..600].Trim() + " …";

    private sealed record BashResult(int ExitCode, string Stdout, string Stderr, bool TimedOut);

    [GeneratedRegex(@"^HTTP (\d{3})$", RegexOptions.Multiline)]
    private static partial Regex HttpStatus();

    [GeneratedRegex(@"(?m)^(\(error\) )?(ERR|NOAUTH|WRONGPASS|NOPERM|MOVED|CROSSSLOT)\b.*$|^(psql: )?(ERROR|FATAL):.*$")]
    private static partial Regex CliError();

    [GeneratedRegex(@"\b(redis-cli|valkey-cli)(\s+(-c|-p\s+\S+|-a\s+\S+|-h\s+\S+|--no-auth-warning))*\s*$")]
    private static partial Regex InteractiveValkeyCli();

    [GeneratedRegex(@"\s+#\s[^'""]*$")]
    private static partial Regex TrailingComment();

    [GeneratedRegex(@"(?:Name => |const string Name = )""([a-z-]+)""")]
    private static partial Regex ScenarioName();
}
