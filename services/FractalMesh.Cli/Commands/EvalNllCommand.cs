using System.Globalization;
using FractalMesh.Data;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Training;

namespace FractalMesh.Cli.Commands;

/// <summary><c>fractalmesh eval-nll</c>: test-split bits per dimension beside PNG and lossless WebP of the same images.</summary>
public static class EvalNllCommand
{
    public static int Run(Options o)
    {
        string modelPath = o.Get("model") ?? GenerateCommand.DefaultModel;
        string? preset = o.Get("preset");
        string dataPath = o.Get("data") ?? "data/emoji32/test.fmds";
        var device = ModelCommands.ParseDevice(o);
        int passes = o.Int("passes", 4, 1, 1000);
        int batch = o.Int("batch", 32, 1, 4096);
        int? limit = o.Get("limit") is { } l ? Options.ParseInt(l, "limit", 1) : null;
        int seed = o.Int("seed", 0, 0);
        o.EnsureAllUsed();
        if (!File.Exists(modelPath) && !Directory.Exists(modelPath)) throw new UsageException($"--model: {modelPath} not found");
        if (!File.Exists(dataPath)) throw new UsageException($"--data: {dataPath} not found");
        ImageDataset data;
        try { data = ImageDataset.Load(dataPath); }
        catch (InvalidDataException e) { throw new UsageException($"--data: {e.Message}"); }
        using var model = ModelCheckpoint.Open(modelPath, preset, device);
        var started = DateTime.UtcNow;
        var report = LikelihoodEvaluator.Evaluate(model, data, passes, batch, limit, seed,
            (done, total) => Console.Write($"\r  {done}/{total} images  {(DateTime.UtcNow - started).TotalSeconds:F0}s   "));
        Console.WriteLine();
        Console.WriteLine($"{report.Images} test images of {data.Width}×{data.Height}, {report.Passes} passes per batch of {batch}");
        Console.WriteLine($"{"method",-28}{"bits/dim",10}{"95% CI ±",12}");
        Row("FractalMesh (this model)", report.Model);
        Row("PNG (SkiaSharp, per image)", report.Png);
        Row("WebP lossless (per image)", report.WebpLossless);
        return 0;
    }

    static void Row(string name, BitsPerDim v) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-28}{v.Mean,10:F4}{v.HalfWidth95,12:F4}"));

}
