using System.Text.Json;
using System.Text.RegularExpressions;

namespace FractalMesh.Operations.Tests;

/// <summary>The instructions of a Dockerfile that these tests compare with the code (continuation lines joined).</summary>
sealed partial class Dockerfile
{
    public required string Path { get; init; }
    public required IReadOnlyList<(string Instruction, string Arguments)> Instructions { get; init; }

    public static Dockerfile Load(string relative)
    {
        var lines = File.ReadAllLines(Repository.PathOf(relative));
        var instructions = new List<(string, string)>();
        string current = "";
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (current.Length == 0 && (line.Length == 0 || line.StartsWith('#'))) continue;
            if (line.StartsWith('#')) continue;
            if (line.EndsWith('\\')) { current += line[..^1] + " "; continue; }
            current += line;
            var space = current.IndexOf(' ');
            instructions.Add((current[..space].ToUpperInvariant(), current[(space + 1)..].Trim()));
            current = "";
        }
        return new Dockerfile { Path = relative, Instructions = instructions };
    }

    public IEnumerable<string> All(string instruction) => Instructions.Where(i => i.Instruction == instruction).Select(i => i.Arguments);

    /// <summary>ENV KEY=VALUE pairs (several per instruction).</summary>
    public Dictionary<string, string> Environment => All("ENV").SelectMany(EnvironmentPairs).ToDictionary(p => p.Key, p => p.Value);

    /// <summary>The KEY=VALUE pairs of one ENV instruction's arguments.</summary>
    public static IEnumerable<(string Key, string Value)> EnvironmentPairs(string arguments) =>
        EnvPair().Matches(arguments).Select(m => (m.Groups[1].Value, m.Groups[2].Value.Trim('"')));

    public IReadOnlyList<int> Exposed => All("EXPOSE").SelectMany(a => a.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Select(p => int.Parse(p.Split('/')[0])).ToList();

    /// <summary>The exec form's words of ENTRYPOINT, or of the CMD of HEALTHCHECK.</summary>
    public string[] Entrypoint => JsonSerializer.Deserialize<string[]>(All("ENTRYPOINT").Single())!;
    public string[] HealthCheck => JsonSerializer.Deserialize<string[]>(All("HEALTHCHECK").Single()[(All("HEALTHCHECK").Single().IndexOf("CMD ", StringComparison.Ordinal) + 4)..])!;

    [GeneratedRegex(@"([A-Za-z_][A-Za-z0-9_]*)=(""[^""]*""|\S+)")]
    private static partial Regex EnvPair();
}
