using System.CommandLine;
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
    /// <summary><c>eval-nll</c>.</summary>
    public static Command Create()
    {
        var codecsOnly = CliOptions.Flag("--codecs-only", "measure the two codecs without a model");
        var model = CliOptions.Text("--model", "FILE", "a FractalMesh .safetensors, an official .pth with --preset, or a folder with config.json and checkpoint-last.pth", GenerateCommand.DefaultModel);
        var preset = CliOptions.Text("--preset", "NAME", "the preset of an official .pth");
        var data = CliOptions.Text("--data", "FILE", "the test split", "data/emoji32/test.fmds");
        var device = ModelCommands.DeviceOption();
        var passes = CliOptions.Int("--passes", "MAR passes (random orders) per batch", 4, 1, 1000);
        var batch = CliOptions.Int("--batch", "images per batch", 32, 1, 4096);
        var limit = CliOptions.OptionalInt("--limit", "evaluate the first N test images only", 1);
        var seed = CliOptions.Long("--seed", "the seed of the MAR orders", 0, 0);
        var command = new Command("eval-nll", "test-split bits/dim (unconditional, equal channel weights) beside lossless WebP and PNG at maximum effort (--codecs-only: the codecs alone)")
        {
            model, preset, data, device, passes, batch, limit, seed, codecsOnly,
        };
        command.SetAction(r => Run(r.GetValue(codecsOnly), r.GetValue(model)!, r.GetValue(preset), r.GetValue(data)!, r.GetValue(device)!,
            r.GetValue(passes), r.GetValue(batch), r.GetValue(limit), r.GetValue(seed)));
        return command;
    }

    static int Run(bool codecsOnly, string modelPath, string? preset, string dataPath, string deviceName, int passes, int batch, int? limit, long seed)
    {
        var device = ModelCommands.ParseDevice(deviceName);
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
            : $"{report.Images} test images of {data.Width}×{data.Height}, {report.Passes} passes per batch of {batch}; codecs encode each image alone; intervals over images");
        Console.Write(Table(report));
        if (report.PerClass is { Count: > 1 } classes) Console.Write(ClassTable(classes, data.ClassNames));
        return 0;
    }

    /// <summary>
    /// One row per label: its images, the model's bits/dim (when measured), WebP lossless's, and the paired difference,
    /// each ± its 95% half-width over that label's images; names from the split's manifest where it has them.
    /// </summary>
    public static string ClassTable(IReadOnlyList<ClassLikelihood> classes, IReadOnlyList<string> names)
    {
        var inv = CultureInfo.InvariantCulture;
        bool model = classes.Any(c => c.Model is not null);
        // A label with one image has a mean but no interval.
        string Cell(BitsPerDim? v, string format) => v is not { } x ? ""
            : x.Mean.ToString(format, inv) + (double.IsNaN(x.HalfWidth95) ? "" : " ± " + x.HalfWidth95.ToString("F3", inv));
        var text = new System.Text.StringBuilder();
        text.AppendLine(model
            ? string.Create(inv, $"{"per class",-28}{"images",7}{"model",16}{"WebP lossless",16}{"model − WebP",17}")
            : string.Create(inv, $"{"per class",-28}{"images",7}{"WebP lossless",16}"));
        foreach (var c in classes)
        {
            string name = c.Label >= 0 && c.Label < names.Count ? $"{c.Label} {names[c.Label]}" : $"{c.Label}";
            text.AppendLine(model
                ? string.Create(inv, $"{name,-28}{c.WebpLossless.Samples,7}{Cell(c.Model, "F3"),16}{Cell(c.WebpLossless, "F3"),16}{Cell(c.ModelMinusWebp, "+0.000;-0.000"),17}")
                : string.Create(inv, $"{name,-28}{c.WebpLossless.Samples,7}{Cell(c.WebpLossless, "F3"),16}"));
        }
        return text.ToString();
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
        if (report.ModelMinusWebp is { } paired)
            text.AppendLine(string.Create(inv,
                $"paired, image by image: this model minus WebP lossless {paired.Mean:+0.0000;-0.0000} ± {paired.HalfWidth95:F4} bits/dim (95%){(paired.Mean + paired.HalfWidth95 < 0 ? ": the model is better" : paired.Mean - paired.HalfWidth95 > 0 ? ": WebP is better" : ": not told apart")}"));
        return text.ToString();
    }
}
