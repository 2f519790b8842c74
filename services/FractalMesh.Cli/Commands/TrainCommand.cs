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
            InitFrom = o.Get("init"),
            BatchSize = o.Int("batch", 32, 1, 4096),
            TotalSteps = o.Int("steps", 20_000, 1),
            WarmupSteps = o.Int("warmup", 500, 0),
            LearningRate = o.Number("lr", 1e-3, 0),
            Seed = o.Int("seed", 0, 0),
            CheckpointMinutes = o.Number("checkpoint-minutes", 5, 0),
            MaxStepsThisRun = o.Get("max-steps") is { } m ? Options.ParseInt(m, "max-steps", 1) : null,
            Dropout = o.Get("dropout") is { } d ? Options.ParseNumber(d, "dropout", 0, 1) : null,
            Threads = o.Int("threads", 0, 0, 256),
            Device = ModelCommands.ParseDevice(o).ToString(),
            Config = o.Get("config") is { } c ? LoadConfig(c) : null,
        };
        bool samples = !o.Flag("no-samples");
        o.EnsureAllUsed();
        if (options.InitFrom is { } init && !File.Exists(init)) throw new UsageException($"--init: {init} not found");
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
}
