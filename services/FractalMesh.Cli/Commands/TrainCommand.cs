using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using FractalMesh.Training;

namespace FractalMesh.Cli.Commands;

/// <summary><c>fractalmesh train</c>: the official recipe with resume; Ctrl-C checkpoints and exits.</summary>
public static class TrainCommand
{
    /// <summary><c>train</c>: every option has the official recipe's value (or the demo model's) as its default.</summary>
    public static Command Create()
    {
        var data = CliOptions.Text("--data", "FILE", "the training split", "data/emoji32/train.fmds");
        var output = CliOptions.Text("--out", "DIR", "the run folder; an existing run resumes from its latest state", "runs/emoji32");
        var preset = CliOptions.Text("--preset", "NAME", "the architecture (see presets)", "fractalmar_tiny_in32");
        var init = CliOptions.Text("--init", "MODEL", "warm start from these weights");
        var config = CliOptions.Text("--config", "FILE", "an architecture in the official config.json form, instead of --preset");
        var batch = CliOptions.Int("--batch", "images per step", 32, 1, 4096);
        var steps = CliOptions.Int("--steps", "steps in all (the schedule's length)", 20_000, 1);
        var warmup = CliOptions.Int("--warmup", "warm-up steps", 500, 0);
        var lr = CliOptions.Number("--lr", "peak learning rate", 1e-3, 0);
        var seed = CliOptions.Long("--seed", "the run's seed", 0, 0);
        var checkpointMinutes = CliOptions.Number("--checkpoint-minutes", "minutes between checkpoints (0: every step)", 5, 0);
        var maxSteps = CliOptions.OptionalInt("--max-steps", "stop after this many steps in this run (resume later)", 1);
        var dropout = CliOptions.OptionalNumber("--dropout", "dropout in [0, 1] (default the preset's)", 0, 1);
        var redWeight = CliOptions.OptionalNumber("--red-weight", "the red channel's weight in the training loss (default the model's, officially 5; 1 trains on what eval-nll measures)", 0, 1000);
        var noFlips = CliOptions.Flag("--no-flips", "train on the images as they are, without random horizontal flips (give every resume the same)");
        var classBalance = CliOptions.Number("--class-balance", "0 to 1: draw each class in proportion to its image count to the power 1 − this (0: the data as it is; 1: every class alike; give every resume the same)", 0, 0, 1);
        var threads = CliOptions.Int("--threads", "libtorch threads (0: libtorch's choice)", 0, 0, 256);
        var headChunk = CliOptions.OptionalInt("--head-chunk", "rows per chunk of the pixel heads' eager backward (0: off; default 4096 on a CPU, off on a GPU)", 0);
        var bf16 = CliOptions.Flag("--bf16", "mixed precision: the transformer blocks' linear layers and the pixel logits multiply in bfloat16; parameters, optimizer, loss and sample sheets stay float32 (a resume may turn it on or off)");
        var device = ModelCommands.DeviceOption();
        var noSamples = CliOptions.Flag("--no-samples", "write no sample sheet at checkpoints");
        var command = new Command("train", "train with the official recipe (AdamW 0.9/0.95, wd 0.05, warm-up + cosine, clip 3.0, label drop 0.1, flips, red weight 5); resumes; Ctrl-C saves")
        {
            data, output, preset, init, config, batch, steps, warmup, lr, seed, checkpointMinutes, maxSteps, dropout, redWeight, noFlips, classBalance, threads, headChunk, bf16, device, noSamples,
        };
        command.SetAction(r => Run(new TrainerOptions
        {
            TrainSplit = r.GetValue(data)!,
            OutputDir = r.GetValue(output)!,
            Preset = r.GetValue(preset)!,
            InitFrom = r.GetValue(init),
            BatchSize = r.GetValue(batch),
            TotalSteps = r.GetValue(steps),
            WarmupSteps = r.GetValue(warmup),
            LearningRate = r.GetValue(lr),
            Seed = r.GetValue(seed),
            CheckpointMinutes = r.GetValue(checkpointMinutes),
            MaxStepsThisRun = r.GetValue(maxSteps),
            Dropout = r.GetValue(dropout),
            RedWeight = r.GetValue(redWeight),
            Flips = !r.GetValue(noFlips),
            ClassBalance = r.GetValue(classBalance),
            Threads = r.GetValue(threads),
            HeadChunkRows = r.GetValue(headChunk),
            BFloat16Matmuls = r.GetValue(bf16),
            Device = ModelCommands.ParseDevice(r.GetValue(device)!).ToString(),
            Config = r.GetValue(config) is { } c ? LoadConfig(c) : null,
        }, samples: !r.GetValue(noSamples)));
        return command;
    }

    static int Run(TrainerOptions options, bool samples)
    {
        if (options.InitFrom is { } init && !File.Exists(init)) throw new UsageException($"--init: {init} not found");
        if (!File.Exists(options.TrainSplit)) throw new UsageException($"--data: {options.TrainSplit} not found (run `fractalmesh data emoji` first)");
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); Console.Error.WriteLine("\nstopping: saving a checkpoint…"); };
        Console.CancelKeyPress += onCancel;
        // SIGTERM (kill, docker stop, Kubernetes) saves too: a run started in the background of a script never sees
        // Ctrl-C, since non-interactive shells start background jobs with SIGINT ignored.
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            cts.Cancel();
            Console.Error.WriteLine("\nstopping (SIGTERM): saving a checkpoint…");
        });
        try
        {
            using var trainer = new Trainer(options);
            var shape = trainer.Model.Config;
            // A resumed run trains the model in its state whatever --preset and --init say; --init's config beats --preset's.
            string what = trainer.Step > 0 ? "the run's model" : options.InitFrom ?? options.Preset;
            Console.WriteLine($"training {what} (widths {string.Join("/", shape.Widths)}, blocks {string.Join("/", shape.Blocks)}) on {options.TrainSplit} into {options.OutputDir}, from step {trainer.Step}{(options.ClassBalance > 0 ? $", class balance {options.ClassBalance.ToString(CultureInfo.InvariantCulture)}" : "")} (native allocator: {TcmallocRelaunch.ActiveAllocator()}{(options.BFloat16Matmuls ? "; products in bfloat16" : "")})");
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
