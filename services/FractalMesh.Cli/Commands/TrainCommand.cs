using System.Globalization;
using FractalMesh.Training;

namespace FractalMesh.Cli.Commands;

/// <summary><c>fractalmesh train</c>: the official recipe with resume; Ctrl-C checkpoints and exits.</summary>
public static class TrainCommand
{
    public static int Run(Options o)
    {
        var options = new TrainerOptions
        {
            TrainSplit = o.Get("data") ?? "data/emoji32/train.fmds",
            OutputDir = o.Get("out") ?? "runs/emoji32",
            Preset = o.Get("preset") ?? "fractalmar_tiny_in32",
            BatchSize = Int(o, "batch", 32, 1, 4096),
            TotalSteps = Int(o, "steps", 20_000, 1, int.MaxValue),
            WarmupSteps = Int(o, "warmup", 500, 0, int.MaxValue),
            LearningRate = Double(o, "lr", 1e-3),
            Seed = Int(o, "seed", 0, 0, int.MaxValue),
            CheckpointMinutes = Double(o, "checkpoint-minutes", 5),
            MaxStepsThisRun = o.Get("max-steps") is { } m ? Int(m, "max-steps", 1, int.MaxValue) : null,
            Dropout = o.Get("dropout") is { } d ? Double(d, "dropout") : null,
            Threads = Int(o, "threads", 0, 0, 256),
            Device = ModelCommands.ParseDevice(o).ToString(),
            Config = o.Get("config") is { } c ? LoadConfig(c) : null,
        };
        bool samples = !o.Flag("no-samples");
        o.EnsureAllUsed();
        if (!File.Exists(options.TrainSplit)) throw new UsageException($"--data: {options.TrainSplit} not found (run `fractalmesh data emoji` first)");
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); Console.Error.WriteLine("\nstopping: saving a checkpoint…"); };
        Console.CancelKeyPress += onCancel;
        try
        {
            using var trainer = new Trainer(options);
            Console.WriteLine($"training {options.Preset} on {options.TrainSplit} into {options.OutputDir}, from step {trainer.Step}");
            double smoothed = double.NaN;
            trainer.Run(cts.Token,
                report =>
                {
                    smoothed = double.IsNaN(smoothed) ? report.Loss : 0.98 * smoothed + 0.02 * report.Loss;
                    int width = 30, filled = (int)(width * (double)report.Step / report.TotalSteps);
                    Console.Write(string.Create(CultureInfo.InvariantCulture,
                        $"\r[{new string('#', filled)}{new string('.', width - filled)}] {report.Step}/{report.TotalSteps} loss {smoothed:F4} lr {report.LearningRate:E2} {report.ImagesPerSecond:F1} img/s   "));
                },
                step =>
                {
                    Console.WriteLine($"\ncheckpoint at step {step}: {Trainer.CheckpointPath(options.OutputDir)}");
                    if (samples) Console.WriteLine($"sample sheet: {SampleSheet.Write(trainer.Model, Path.Combine(options.OutputDir, $"samples-step{step}.png"), perClass: 4, seed: 0)}");
                });
        }
        finally { Console.CancelKeyPress -= onCancel; }
        return 0;
    }

    static FractalMesh.Model.Config.FractalConfig LoadConfig(string path)
    {
        if (!File.Exists(path)) throw new UsageException($"--config: {path} not found");
        try { return FractalMesh.Model.Config.FractalConfig.FromJson(File.ReadAllText(path)); }
        catch (Exception e) when (e is ArgumentException or System.Text.Json.JsonException) { throw new UsageException($"--config: {e.Message}"); }
    }

    static int Int(Options o, string name, int fallback, int min, int max) => o.Get(name) is { } v ? Int(v, name, min, max) : fallback;

    static int Int(string v, string name, int min, int max) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int x) && x >= min && x <= max ? x
        : throw new UsageException($"--{name}: '{v}' is not an integer in {min}..{max}");

    static double Double(Options o, string name, double fallback) => o.Get(name) is { } v ? Double(v, name) : fallback;

    static double Double(string v, string name) =>
        double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x) && x >= 0 ? x
        : throw new UsageException($"--{name}: '{v}' is not a non-negative number");
}
