using System.Diagnostics;
using Npgsql;
using ShopReference.Hosting;
using ShopReference.Testing;
using StackExchange.Redis;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Runs its own app twice on one data folder: stop leaves nothing behind, a second run finds the data. And `dotnet run`
/// on the AppHost, stopped with Ctrl+C, leaves no process behind.
/// </summary>
public sealed partial class AppLifetimeTests
{
    private static readonly TimeSpan ProcessExitTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Stopping_leaves_no_server_process_and_a_second_run_reuses_the_data_with_new_passwords()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        var first = await ShopApp.StartAsync(cancellationToken);
        var dataDirectory = first.DataDirectory;
        try
        {
            var marker = Guid.NewGuid().ToString("N");
            await WriteMarkersAsync(first, marker, cancellationToken);
            int[] serverPids = [first.ProcessIdOf("valkey"), first.ProcessIdOf("postgres")];

            await first.StopAsync();

            foreach (var pid in serverPids)
            {
                await Eventually.UntilAsync(() => !ProcessIsAlive(pid), ProcessExitTimeout, $"process {pid} still runs after the app stopped", cancellationToken: cancellationToken);
            }
            Assert.Empty(ProcessesMentioning(dataDirectory));

            // The second run generates new passwords (ShopApp randomises them): they must apply to the old folder.
            await using var second = await ShopApp.StartAsync(cancellationToken, dataDirectory);
            Assert.Equal(marker, await ReadPostgresMarkerAsync(second, cancellationToken));
            Assert.Equal(marker, await ReadValkeyMarkerAsync(second));
        }
        finally
        {
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    // Debug or Release: the AppHost was built with this test project, in the same configuration.
    internal static string BuildConfiguration => new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;

    internal static void Signal(string signal, int target)
    {
        using var kill = Process.Start("kill", [signal, "--", target.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    internal static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    /// <summary>
    /// Every live process the app owns: <paramref name="root"/>'s children and theirs, and the orchestrator (DCP), which
    /// detaches from the AppHost (its own session, parent init) and names the AppHost it serves with <c>--monitor pid</c>.
    /// </summary>
    internal static List<int> Descendants(int root)
    {
        var parents = new Dictionary<int, int>();
        var monitors = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid))
                {
                    continue;
                }
                if (File.ReadLines(Path.Combine(dir, "status")).FirstOrDefault(l => l.StartsWith("PPid:", StringComparison.Ordinal)) is { } line)
                {
                    parents[pid] = int.Parse(line[5..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                }
                if (MonitorOption().Match(CommandLine(pid)) is { Success: true } monitor)
                {
                    monitors[pid] = int.Parse(monitor.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }
        var found = new List<int> { root };
        for (var i = 0; i < found.Count; i++)
        {
            var owner = found[i];
            found.AddRange(parents.Where(p => p.Value == owner).Select(p => p.Key)
                .Concat(monitors.Where(m => m.Value == owner).Select(m => m.Key)).Where(pid => !found.Contains(pid)).Distinct());
        }
        return [.. found.Where(ProcessIsAlive)];
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"--monitor (\d+)\b")]
    private static partial System.Text.RegularExpressions.Regex MonitorOption();

    private static async Task WriteMarkersAsync(ShopApp app, string marker, CancellationToken cancellationToken)
    {
        await using (var connection = new NpgsqlConnection(await app.App.GetConnectionStringAsync("catalogdb", cancellationToken)))
        {
            await connection.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand("create table lifetime_marker(value text)", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
            await using var write = new NpgsqlCommand("insert into lifetime_marker values ($1)", connection)
            {
                Parameters = { new() { Value = marker } },
            };
            await write.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await app.App.GetConnectionStringAsync("valkey", cancellationToken) ?? "");
        await valkey.GetDatabase().StringSetAsync("test:lifetime:marker", marker);
    }

    private static async Task<string?> ReadPostgresMarkerAsync(ShopApp app, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(await app.App.GetConnectionStringAsync("catalogdb", cancellationToken));
        await connection.OpenAsync(cancellationToken);
        await using var read = new NpgsqlCommand("select value from lifetime_marker", connection);
        return (string?)await read.ExecuteScalarAsync(cancellationToken);
    }

    private static async Task<string?> ReadValkeyMarkerAsync(ShopApp app)
    {
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await app.App.GetConnectionStringAsync("valkey") ?? "");
        return await valkey.GetDatabase().StringGetAsync("test:lifetime:marker");
    }

    internal static bool ProcessIsAlive(int pid)
    {
        var status = $"/proc/{pid}/status";
        // A zombie has exited; only its parent has not collected it yet.
        return File.Exists(status) && !File.ReadLines(status).Any(line => line.StartsWith("State:", StringComparison.Ordinal) && line.Contains("zombie", StringComparison.Ordinal));
    }

    internal static List<int> ProcessesMentioning(string text)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains(text, StringComparison.Ordinal) && ProcessIsAlive(pid))
                {
                    found.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }
        return found;
    }
}

/// <summary>
/// `dotnet run` on the AppHost, stopped with Ctrl+C, leaves no process behind. It runs alone: a whole app started
/// beside the others starved them on CI's two cores.
/// </summary>
[Collection(CtrlCCollection.Name)]
public sealed class CtrlCTests
{
    [Fact]
    public async Task Ctrl_c_on_dotnet_run_stops_every_process_the_app_started()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        var dataDirectory = Directory.CreateTempSubdirectory("shopref-ctrlc-").FullName;
        File.SetUnixFileMode(dataDirectory, (UnixFileMode)Convert.ToInt32("755", 8)); // 'postgres' must reach its folder
        // `dotnet run --project AppHost --launch-profile http` as the README says, on free ports so it runs beside anything;
        // the profile's variables are given here instead (a launch profile's would override the free ports).
        // env --default-signal: a process started from a background job inherits SIGINT ignored (so does the AppHost it
        // runs, which would then never see the Ctrl+C); a terminal's foreground job has it at its default.
        var info = new ProcessStartInfo("setsid", ["env", "--default-signal=INT,QUIT", "dotnet", "run", "--project", Path.Combine(Docs.DocCommands.RepositoryRoot(), "AppHost"),
            "--no-build", "-c", AppLifetimeTests.BuildConfiguration, "--no-launch-profile", "--",
            "--Infrastructure:Mode=Local", $"--Infrastructure:DataDirectory={dataDirectory}", "--Ports:Gateway=0", "--Ports:Valkey=0", "--Ports:Postgres=0",
            $"--Infrastructure:Valkey:Topology={TestValkey.RequestedTopology}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment =
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Development",
                ["DOTNET_ENVIRONMENT"] = "Development",
                ["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true",
                ["ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS"] = "true",
                ["ASPNETCORE_URLS"] = $"http://localhost:{LocalPorts.NextFree()}",
                ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"http://localhost:{LocalPorts.NextFree()}",
                ["ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"] = $"http://localhost:{LocalPorts.NextFree()}",
            },
        };
        using var run = Process.Start(info)!; // setsid and env exec in place: dotnet runs in a session (and process group) of its own
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        run.OutputDataReceived += (_, e) => { if (e.Data is { } line) output.Enqueue(line); };
        run.ErrorDataReceived += (_, e) => { if (e.Data is { } line) output.Enqueue(line); };
        run.BeginOutputReadLine();
        run.BeginErrorReadLine();
        List<int> started = [];
        try
        {
            // Up: the servers run on the data folder and every service process has started.
            await Eventually.UntilAsync(() =>
            {
                started = AppLifetimeTests.Descendants(run.Id);
                return AppLifetimeTests.ProcessesMentioning(dataDirectory).Count >= 2
                    && started.Count(pid => AppLifetimeTests.CommandLine(pid).Contains("ShopReference.", StringComparison.Ordinal) && !AppLifetimeTests.CommandLine(pid).Contains("dotnet run", StringComparison.Ordinal)) >= 8;
            }, TimeSpan.FromMinutes(4), () => $"the app did not start: {string.Join("; ", started.Select(pid => $"{pid} {AppLifetimeTests.CommandLine(pid)}"))}\n" +
                string.Join("\n", output.TakeLast(20)), TimeSpan.FromSeconds(1), cancellationToken);
            started = [.. AppLifetimeTests.Descendants(run.Id).Union(AppLifetimeTests.ProcessesMentioning(dataDirectory))];

            AppLifetimeTests.Signal("-INT", -run.Id); // Ctrl+C in a terminal: SIGINT to the whole foreground process group

            await Eventually.UntilAsync(() => started.All(pid => !AppLifetimeTests.ProcessIsAlive(pid)), TimeSpan.FromSeconds(90),
                () => $"still running 90 s after Ctrl+C: {string.Join("; ", started.Where(AppLifetimeTests.ProcessIsAlive).Select(pid => $"{pid} {AppLifetimeTests.CommandLine(pid)}"))}\n" +
                    string.Join("\n", output.TakeLast(20)), TimeSpan.FromSeconds(1), cancellationToken);
            Assert.Empty(AppLifetimeTests.ProcessesMentioning(dataDirectory));
        }
        finally
        {
            foreach (var pid in started.Where(AppLifetimeTests.ProcessIsAlive))
            {
                AppLifetimeTests.Signal("-KILL", pid);
            }
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}
