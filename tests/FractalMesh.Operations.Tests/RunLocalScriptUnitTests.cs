using System.Text.RegularExpressions;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>deploy/loadtest/run-local.sh passes settings the programs have, and only sends traffic to loopback.</summary>
public sealed partial class RunLocalScriptUnitTests
{
    const string Script = "deploy/loadtest/run-local.sh";
    /// <summary>The script without its comments (which show placeholders such as --Gateway:Key=value).</summary>
    static readonly string Text = string.Join("\n", File.ReadAllLines(Repository.PathOf(Script)).Where(l => !l.TrimStart().StartsWith('#')));

    [GeneratedRegex(@"--(?<section>Level|Gateway|Observability):(?<key>[A-Za-z]+(?::\d+)?)=")]
    private static partial Regex Setting();

    [Fact]
    public void EverySettingItPassesIsAKeyOfTheProgramsOptions()
    {
        var settings = Setting().Matches(Text).Select(m => (Section: m.Groups["section"].Value, Key: m.Groups["key"].Value)).ToList();
        Assert.Contains(settings, s => s.Section == "Level");
        Assert.Contains(settings, s => s.Section == "Gateway");
        var problems = new List<string>();
        foreach (var program in ProgramSpec.All)
        {
            // A key may be passed more than once (Observability to the gateway and to the level service).
            var mine = settings.Where(s => program.Sections.ContainsKey(s.Section))
                .Select(s => $"{s.Section}__{s.Key.Replace(":", "__")}").Distinct();
            // Only the keys: the script's values are shell expressions.
            problems.AddRange(mine.Where(k => program.ProblemsWith(new Dictionary<string, string> { [k] = "" }, Script)
                .Any(p => p.Contains("no settable property") || p.Contains("binds no section") || p.Contains("could index")))
                .Select(k => $"{Script}: {k} is no key of the {program.Name}"));
        }
        var known = ProgramSpec.All.SelectMany(p => p.Sections.Keys).ToHashSet();
        Assert.All(settings, s => Assert.Contains(s.Section, known));
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void EveryAddressItUsesIsOnLoopback()
    {
        var hosts = Regex.Matches(Text, @"(?:https?://|/dev/tcp/|--bind )(?<host>[^:/""\s]+)").Select(m => m.Groups["host"].Value).Distinct().ToList();
        Assert.NotEmpty(hosts);
        Assert.All(hosts, h => Assert.Equal("127.0.0.1", h));
    }
}
