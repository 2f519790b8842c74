using System.Globalization;
using System.Text.Json;

namespace FractalMesh.LoadTest;

/// <summary>
/// <c>compare NAME=REPORT.json NAME=REPORT.json …</c>: the reports of runs of the same profile against different topologies
/// (run-local.sh's FM_MODE=compare: embedded, then the multi-process pipeline), side by side per concurrency step, with
/// the serving ratios (docs/ARCHITECTURE.md, Benchmarks): each run's images/s and p50 at the lowest concurrency against the first run's, and each
/// run's images/s at the highest concurrency against its own at the lowest (what cross-request batching buys).
/// Prints numbers and asserts nothing.
/// </summary>
public static class ReportComparison
{
    public const string Usage = """
        usage: FractalMesh.LoadTest compare NAME=REPORT.json NAME=REPORT.json [...] [--out FILE]
          compares load-test reports of the same profile; the first is the baseline of the ratios
          --out FILE            also write the table and ratios as JSON
        """;

    /// <summary>One run's ratios: against the baseline at the lowest concurrency, and its own scaling.</summary>
    public sealed record Ratios(string Name, double ImagesPerSecondVsBaselineAtLowest, double P50VsBaselineAtLowest, double ScalingHighestOverLowest);

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var runs = new List<(string Name, RunReport Report)>();
        string? outPath = null;
        try
        {
            for (int i = 0; i < args.Count; i++)
            {
                if (args[i] == "--out" && i + 1 < args.Count) { outPath = args[++i]; continue; }
                int eq = args[i].IndexOf('=');
                if (eq <= 0) throw new ArgumentException($"'{args[i]}': expected NAME=REPORT.json");
                var path = args[i][(eq + 1)..];
                if (!File.Exists(path)) throw new ArgumentException($"'{path}': no such report");
                var report = JsonSerializer.Deserialize<RunReport>(await File.ReadAllTextAsync(path), new JsonSerializerOptions(JsonSerializerDefaults.Web))
                    ?? throw new ArgumentException($"'{path}' holds no report");
                if (report.Steps.Count == 0) throw new ArgumentException($"'{path}' has no steps");
                runs.Add((args[i][..eq], report));
            }
            if (runs.Count < 2) throw new ArgumentException("compare needs at least two reports");
        }
        catch (Exception e) when (e is ArgumentException or JsonException)
        {
            Console.Error.WriteLine($"{e.Message}\n{Usage}");
            return 2;
        }

        int nameWidth = Math.Max(4, runs.Max(r => r.Name.Length));
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{"mode".PadRight(nameWidth)}  concurrency  ok/requests  images/s  p50 ms    p95 ms    errors");
        foreach (var (name, report) in runs)
            foreach (var s in report.Steps)
                Console.WriteLine(string.Create(inv, $"{name.PadRight(nameWidth)}  {s.Concurrency,11}  {$"{s.Succeeded}/{s.Requests}",11}  {s.ImagesPerSecond,8:F3}  {s.LatencyMs.P50,8:F0}  {s.LatencyMs.P95,8:F0}  {s.Failed}"));

        static StepReport Lowest(RunReport r) => r.Steps.MinBy(s => s.Concurrency)!;
        static StepReport Highest(RunReport r) => r.Steps.MaxBy(s => s.Concurrency)!;
        static double Ratio(double a, double b) => b == 0 ? double.NaN : Math.Round(a / b, 3);
        var baseline = runs[0];
        var ratios = runs.Select(r => new Ratios(r.Name,
            Ratio(Lowest(r.Report).ImagesPerSecond, Lowest(baseline.Report).ImagesPerSecond),
            Ratio(Lowest(r.Report).LatencyMs.P50, Lowest(baseline.Report).LatencyMs.P50),
            Ratio(Highest(r.Report).ImagesPerSecond, Lowest(r.Report).ImagesPerSecond))).ToList();
        Console.WriteLine();
        foreach (var r in ratios.Skip(1))
            Console.WriteLine(string.Create(inv, $"{r.Name}/{baseline.Name} at concurrency {Lowest(baseline.Report).Concurrency}: images/s x{r.ImagesPerSecondVsBaselineAtLowest:F3}, p50 latency x{r.P50VsBaselineAtLowest:F3}"));
        foreach (var (r, run) in ratios.Zip(runs))
            Console.WriteLine(string.Create(inv, $"{r.Name}: images/s at concurrency {Highest(run.Report).Concurrency} / at {Lowest(run.Report).Concurrency} = x{r.ScalingHighestOverLowest:F3}"));

        if (outPath is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
            var json = new { baseline = baseline.Name, runs = runs.Select(r => new { name = r.Name, r.Report.Target, steps = r.Report.Steps }), ratios };
            await File.WriteAllTextAsync(outPath, JsonSerializer.Serialize(json, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
            Console.WriteLine($"comparison: {Path.GetFullPath(outPath)}");
        }
        return 0;
    }
}
