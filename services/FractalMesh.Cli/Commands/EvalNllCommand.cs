using System.Globalization;
using FractalMesh.Data;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Training;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>fractalmesh eval-nll</c>: test-split bits per dimension beside lossless WebP at libwebp's maximum effort and PNG at
/// maximum compression of the same images (<see cref="CodecBaselines"/>), with 95% intervals and the best one marked.
/// <c>--codecs-only</c> measures the two codecs without a model.
/// </summary>
public static class EvalNllCommand
{
    public static int Run(Options o)
    {
        bool codecsOnly = o.Flag("codecs-only");
        string modelPath = o.Get("model") ?? GenerateCommand.DefaultModel;
        string? preset = o.Get("preset");
        string dataPath = o.Get("data") ?? "data/emoji32/test.fmds";
        var device = ModelCommands.ParseDevice(o);
        int passes = o.Int("passes", 4, 1, 1000);
        int batch = o.Int("batch", 32, 1, 4096);
        int? limit = o.Get("limit") is { } l ? Options.ParseInt(l, "limit", 1) : null;
        int seed = o.Int("seed", 0, 0);
        o.EnsureAllUsed();
        if (!codecsOnly && !File.Exists(modelPath) && !Directory.Exists(modelPath)) throw new UsageException($"--model: {modelPath} not found");
        if (!File.Exists(dataPath)) throw new UsageException($"--data: {dataPath} not found");
        ImageDataset data;
        try { data = ImageDataset.Load(dataPath); }
        catch (InvalidDataException e) { throw new UsageException($"--data: {e.Message}"); }
        var started = DateTime.UtcNow;
        void Progress(int done, int total) => Console.Write($"\r  {done}/{total} images  {(DateTime.UtcNow - started).TotalSeconds:F0}s   ");
        LikelihoodReport report;
        if (codecsOnly) report = LikelihoodEvaluator.EvaluateCodecs(data, limit, Progress);
        else
        {
            using var model = ModelCheckpoint.Open(modelPath, preset, device);
            report = LikelihoodEvaluator.Evaluate(model, data, passes, batch, limit, seed, Progress);
        }
        Console.WriteLine();
        Console.WriteLine(codecsOnly
            ? $"{report.Images} test images of {data.Width}×{data.Height}, codecs only, each image encoded alone"
            : $"{report.Images} test images of {data.Width}×{data.Height}, {report.Passes} passes per batch of {batch}; codecs encode each image alone");
        Console.Write(Table(report));
        return 0;
    }

    /// <summary>The rows: the model (when measured), WebP lossless and PNG, each bits/dim ± 95% half-width, the lowest mean marked best.</summary>
    public static string Table(LikelihoodReport report)
    {
        var rows = new List<(string Name, BitsPerDim Value)>();
        if (report.Model is { } model) rows.Add(("FractalMesh (this model)", model));
        rows.Add(($"WebP lossless (libwebp method {CodecBaselines.WebpMethod}, q{CodecBaselines.WebpQuality})", report.WebpLossless));
        rows.Add(($"PNG (zlib {CodecBaselines.PngZlibLevel}, best of {CodecBaselines.PngTrials.Count} trials)", report.Png));
        double best = rows.Min(r => r.Value.Mean);
        var inv = CultureInfo.InvariantCulture;
        var text = new System.Text.StringBuilder();
        text.AppendLine(string.Create(inv, $"{"method",-44}{"bits/dim",10}{"95% CI ±",11}"));
        foreach (var (name, v) in rows)
            text.AppendLine(string.Create(inv, $"{name,-44}{v.Mean,10:F4}{v.HalfWidth95,11:F4}{(v.Mean == best ? "  ← best" : "")}"));
        var winner = rows.First(r => r.Value.Mean == best);
        var runnerUp = rows.Where(r => r.Name != winner.Name).MinBy(r => r.Value.Mean);
        // Two means whose 95% intervals overlap are not told apart at that level; say so rather than claim a clear winner.
        bool overlap = runnerUp.Name is not null
            && winner.Value.Mean + winner.Value.HalfWidth95 >= runnerUp.Value.Mean - runnerUp.Value.HalfWidth95;
        string caveat = overlap ? $"; its 95% interval overlaps that of {runnerUp.Name}" : "";
        text.AppendLine(string.Create(inv, $"best: {winner.Name} at {winner.Value.Mean:F4} bits/dim{caveat}"));
        return text.ToString();
    }
}
