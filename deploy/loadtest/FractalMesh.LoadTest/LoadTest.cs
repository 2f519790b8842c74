using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using HdrHistogram;

namespace FractalMesh.LoadTest;

/// <summary>One concurrency step's outcome: latencies of the answered requests (ms), throughput and errors by name.</summary>
public sealed record StepReport(int Concurrency, int Requests, int Succeeded, int Failed, IReadOnlyDictionary<string, int> Errors,
    double Seconds, double RequestsPerSecond, double ImagesPerSecond, LatencyReport LatencyMs);

/// <summary>Latency percentiles of the successful requests, in milliseconds (HdrHistogram, 3 significant digits).</summary>
public sealed record LatencyReport(double P50, double P95, double P99, double Max, double Mean);

/// <summary>The whole run, as written to the JSON report.</summary>
public sealed record RunReport(string Target, string Protocol, DateTimeOffset Started, int ProcessorCount, int ImagesPerRequest,
    int[] Classes, float Cfg, int[] NumIter, IReadOnlyList<StepReport> Steps);

/// <summary>Warm-up, then each concurrency step in turn: N callers share the step's request budget until it or the step's time runs out.</summary>
public static class LoadTest
{
    /// <summary>Highest latency a histogram holds: one hour, in microseconds.</summary>
    const long HighestMicroseconds = 3_600_000_000L;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args is ["--help"] or ["-h"]) { Console.WriteLine(LoadTestOptions.Usage); return 0; }
        LoadTestOptions options;
        try { options = LoadTestOptions.Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"{e.Message}\n{LoadTestOptions.Usage}");
            return 2;
        }
        using var caller = GenerateCaller.For(options);
        var started = DateTimeOffset.UtcNow;
        Console.WriteLine($"load test: {options.Protocol} {options.Target}, {options.Count} image(s) per request, classes {string.Join(",", options.Classes)}, cfg {options.Cfg}, num_iter [{string.Join(",", options.NumIter)}]");
        long next = 0;
        for (int i = 0; i < options.Warmup; i++)
        {
            var error = await caller.CallAsync(next++, CancellationToken.None);
            if (error is not null)
            {
                Console.Error.WriteLine($"warm-up request failed: {error}; is the gateway at {options.Target} ready?");
                return 1;
            }
        }
        var steps = new List<StepReport>();
        Console.WriteLine(Header);
        for (int step = 0; step < options.Concurrency.Length; step++)
        {
            var report = await RunStepAsync(caller, options, options.Concurrency[step], options.RequestsOf(step), next);
            next += report.Requests;
            steps.Add(report);
            Console.WriteLine(Row(report));
        }
        var run = new RunReport(options.Target.ToString(), options.Protocol, started, Environment.ProcessorCount, options.Count,
            options.Classes, options.Cfg, options.NumIter, steps);
        var folder = Path.GetDirectoryName(Path.GetFullPath(options.ReportPath))!;
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(options.ReportPath, JsonSerializer.Serialize(run, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
        Console.WriteLine($"report: {Path.GetFullPath(options.ReportPath)}");
        return steps.All(s => s.Succeeded > 0) ? 0 : 1;
    }

    static async Task<StepReport> RunStepAsync(GenerateCaller caller, LoadTestOptions options, int concurrency, int requests, long firstIndex)
    {
        int taken = 0;
        var errors = new Dictionary<string, int>();
        var stopIssuing = Stopwatch.StartNew();
        var clock = Stopwatch.StartNew();
        async Task<LongHistogram> Worker()
        {
            var latencies = new LongHistogram(HighestMicroseconds, 3);
            while (stopIssuing.Elapsed < options.StepDuration)
            {
                int mine = Interlocked.Increment(ref taken) - 1;
                if (mine >= requests) break;
                long start = Stopwatch.GetTimestamp();
                var error = await caller.CallAsync(firstIndex + mine, CancellationToken.None);
                if (error is null) latencies.RecordValue(Math.Max(1, (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds));
                else lock (errors) errors[error] = errors.GetValueOrDefault(error) + 1;
            }
            return latencies;
        }
        var histograms = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker)));
        double seconds = clock.Elapsed.TotalSeconds;
        var all = new LongHistogram(HighestMicroseconds, 3);
        foreach (var h in histograms) all.Add(h);
        int failed = errors.Values.Sum(), succeeded = (int)all.TotalCount;
        double Ms(long microseconds) => Math.Round(microseconds / 1000.0, 1);
        var latency = succeeded == 0 ? new LatencyReport(0, 0, 0, 0, 0)
            : new LatencyReport(Ms(all.GetValueAtPercentile(50)), Ms(all.GetValueAtPercentile(95)), Ms(all.GetValueAtPercentile(99)),
                Ms(all.GetMaxValue()), Math.Round(all.GetMean() / 1000.0, 1));
        return new StepReport(concurrency, succeeded + failed, succeeded, failed, errors, Math.Round(seconds, 2),
            Math.Round(succeeded / seconds, 3), Math.Round(succeeded * options.Count / seconds, 3), latency);
    }

    const string Header = "concurrency  requests  ok  errors     seconds  req/s    images/s  p50 ms    p95 ms    p99 ms    max ms    error kinds";

    static string Row(StepReport s) => string.Create(CultureInfo.InvariantCulture,
        $"{s.Concurrency,11}  {s.Requests,8}  {s.Succeeded,2}  {s.Failed,6}  {s.Seconds,10:F1}  {s.RequestsPerSecond,7:F3}  {s.ImagesPerSecond,8:F3}  {s.LatencyMs.P50,8:F0}  {s.LatencyMs.P95,8:F0}  {s.LatencyMs.P99,8:F0}  {s.LatencyMs.Max,8:F0}  {string.Join(", ", s.Errors.Select(e => $"{e.Key} x{e.Value}"))}");
}
