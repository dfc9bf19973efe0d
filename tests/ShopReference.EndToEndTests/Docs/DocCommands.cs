using System.Text.RegularExpressions;

namespace ShopReference.EndToEndTests.Docs;

/// <summary>A command the README or a page in docs/ tells a reader to type, and where.</summary>
/// <param name="Source">File and line, <c>docs/cart.md:20</c>.</param>
/// <param name="Lines">The command lines (a fenced block keeps its lines together: a later line uses an earlier one's variable).</param>
/// <param name="Program">The first program the command runs (<c>curl</c>, <c>redis-cli</c>, <c>dotnet</c>…), past any <c>NAME=value</c>.</param>
public sealed record DocCommand(string Source, IReadOnlyList<string> Lines, string Program)
{
    public string Text => string.Join("\n", Lines);

    public override string ToString() => $"{Source}: {Text}";
}

/// <summary>
/// Finds the commands in README.md and docs/*.md: the lines of unlabelled or shell code blocks, and inline code that starts
/// with a program a reader runs (<c>`curl …`</c>), or a Valkey command typed into <c>valkey-cli</c> (<c>`GET key`</c>).
/// Benchmark output blocks and diagrams are not commands.
/// </summary>
public static partial class DocCommands
{
    /// <summary>Programs whose use in the docs is a command to run; anything else in inline code is prose.</summary>
    public static readonly string[] Programs = ["curl", "redis-cli", "valkey-cli", "psql", "dotnet", "azd", "aspire", "ss", "docker", "podman", "jq", "GET"];

    /// <summary>Commands the docs name to say what the project does instead (cluster.md: formed from C#, without it).</summary>
    private static readonly string[] Mentions = ["valkey-cli --cluster create"];

    private static readonly string[] ShellLanguages = ["bash", "sh", "shell", "console"];

    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ShopReference.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("ShopReference.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Pages a test of their own follows as written, outside the app (docs/own-app.md: samples/own-app.sh).</summary>
    public static readonly string[] FollowedElsewhere = ["docs/own-app.md"];

    public static IReadOnlyList<DocCommand> Extract(string root)
    {
        return [.. DocFiles(root).SelectMany(file => FromFile(file, File.ReadAllLines(Path.Combine(root, file))))];
    }

    /// <summary>
    /// What a reader could not tell is a command or not, each with where it is: a fenced block that names no language
    /// (commands say <c>bash</c>, anything else <c>text</c>), and a line of a shell block that runs no program this suite
    /// runs or checks (so it would be dropped unseen).
    /// </summary>
    public static IReadOnlyList<string> Unaccounted(string root)
    {
        var problems = new List<string>();
        foreach (var file in DocFiles(root))
        {
            var lines = File.ReadAllLines(Path.Combine(root, file));
            string? language = null;
            var block = new List<string>();
            for (var i = 0; i < lines.Length; i++)
            {
                if (!lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal))
                {
                    block.Add(lines[i]);
                    continue;
                }
                if (language is null)
                {
                    language = lines[i].Trim()[3..].Trim();
                    if (language.Length == 0)
                    {
                        problems.Add($"{file}:{i + 1}: a block that names no language (bash for commands, text for anything else)");
                    }
                    block.Clear();
                    continue;
                }
                if (ShellLanguages.Contains(language))
                {
                    problems.AddRange(JoinContinuations(block)
                        .Where(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#') && ProgramOf(l) is null && !Assignment().IsMatch(l))
                        .Select(l => $"{file}: `{l.Trim()}` runs a program this suite neither runs nor checks: teach it one or the other"));
                }
                language = null;
            }
        }
        return problems;
    }

    private static IEnumerable<string> DocFiles(string root) =>
        new[] { "README.md" }.Concat(Directory.GetFiles(Path.Combine(root, "docs"), "*.md")
            .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/')).Where(f => !FollowedElsewhere.Contains(f)).Order(StringComparer.Ordinal));

    public static IEnumerable<DocCommand> FromFile(string file, string[] lines)
    {
        var inBlock = false;
        var shell = false;
        var blockStart = 0;
        var block = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                if (!inBlock)
                {
                    inBlock = true;
                    shell = ShellLanguages.Contains(line.Trim()[3..].Trim());
                    blockStart = i + 1;
                    block.Clear();
                }
                else
                {
                    inBlock = false;
                    // A block's assignments stay with its commands: a later line uses the variable (KEY=…, then $KEY).
                    var commands = JoinContinuations(block).Where(l => ProgramOf(l) is not null || Assignment().IsMatch(l)).ToList();
                    if (shell && commands.Any(l => ProgramOf(l) is not null))
                    {
                        yield return new DocCommand($"{file}:{blockStart + 1}", commands, commands.Select(ProgramOf).First(p => p is not null)!);
                    }
                }
                continue;
            }
            if (inBlock)
            {
                block.Add(line);
                continue;
            }
            foreach (Match span in InlineCode().Matches(line))
            {
                var text = span.Groups[1].Value.Trim();
                if (ProgramOf(text) is { } program && text.Contains(' ', StringComparison.Ordinal))
                {
                    yield return new DocCommand($"{file}:{i + 1}", [text], program);
                }
            }
        }
    }

    /// <summary>The program a command line runs, past <c>NAME=value</c> assignments and <c>$(</c>; null when it is not a command.</summary>
    public static string? ProgramOf(string line)
    {
        var match = FirstProgram().Match(line);
        if (!match.Success)
        {
            return null;
        }
        var word = match.Groups["program"].Value;
        if (word == "GET" && !ConcreteKey().IsMatch(line[(match.Index + match.Length)..].Trim()))
        {
            return null; // an HTTP route (GET /api/cart), a method list (GET, HEAD) or a key pattern ({id}): prose, not a command
        }
        if (Mentions.Contains(line.Trim()))
        {
            return null;
        }
        return Programs.Contains(word, StringComparer.Ordinal) ? word : null;
    }

    private static IEnumerable<string> JoinContinuations(IEnumerable<string> lines)
    {
        var pending = "";
        foreach (var line in lines)
        {
            if (line.EndsWith('\\'))
            {
                pending += line[..^1];
                continue;
            }
            yield return pending + line;
            pending = "";
        }
        if (pending.Length > 0)
        {
            yield return pending;
        }
    }

    [GeneratedRegex(@"^\s*[A-Z_][A-Z0-9_]*=(?:'[^']*'|""[^""]*""|\S+)\s*$")]
    private static partial Regex Assignment();

    // One key, written out: catalog:product:{42}, not catalog:product:{id}.
    [GeneratedRegex(@"^[a-z][\w.-]*(:[\w.-]+|:\{[0-9]+\})+$")]
    private static partial Regex ConcreteKey();

    [GeneratedRegex(@"(?<!`)`([^`]+)`(?!`)")]
    private static partial Regex InlineCode();

    // Assignments (KEY='x', TOKEN=$(…)) before the program; a captured command's program is the one inside $( ).
    [GeneratedRegex(@"^\s*(?:[A-Z_][A-Z0-9_]*=(?:'[^']*'|""[^""]*""|\S*)\s+)*(?:[A-Z_][A-Z0-9_]*=\$\()?(?<program>[A-Za-z][\w-]*)")]
    private static partial Regex FirstProgram();
}
