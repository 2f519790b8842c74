using System.CommandLine;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Reference;
using FractalMesh.Model.Sampling;
using FractalMesh.Training;
using static TorchSharp.torch;

namespace FractalMesh.Cli.Commands;

/// <summary>Commands about models themselves: reference parity, checkpoint conversion, presets.</summary>
public static class ModelCommands
{
    /// <summary>The <c>--device</c> option: where a model is loaded.</summary>
    public static Option<string> DeviceOption() => CliOptions.Text("--device", "cpu|cuda[:N]", "where the model is loaded; cuda needs the CUDA libtorch build", "cpu");

    /// <summary>Parses a <c>--device</c> value (cpu, cuda, cuda:N); CUDA needs the CUDA libtorch build.</summary>
    public static Device ParseDevice(string name)
    {
        try
        {
            var device = new Device(name);
            if (device.type == TorchSharp.DeviceType.CUDA && !cuda.is_available())
                throw new UsageException($"--device {name}: CUDA is not available (build with -p:LibTorchBackend=cuda on a machine with the CUDA packages)");
            return device;
        }
        catch (Exception e) when (e is not UsageException)
        {
            throw new UsageException($"--device: '{name}' is not a device (cpu, cuda, cuda:0)");
        }
    }

    /// <summary><c>verify-reference DIR</c>.</summary>
    public static Command VerifyReference()
    {
        var dir = new Argument<string>("DIR") { Description = "a reference case: config.json, checkpoint-last.pth, expected.safetensors" };
        var device = DeviceOption();
        var command = new Command("verify-reference", "recompute every tensor of a reference case and compare (tolerance 1e-4); exit 1 if any fails") { dir, device };
        command.SetAction(r => VerifyReference(r.GetValue(dir)!, ParseDevice(r.GetValue(device)!)));
        return command;
    }

    static int VerifyReference(string dir, Device device)
    {
        foreach (var f in new[] { "config.json", "checkpoint-last.pth", "expected.safetensors" })
        {
            if (!File.Exists(Path.Combine(dir, f))) throw new UsageException($"DIR: {Path.Combine(dir, f)} not found");
        }
        var rows = ReferenceVerifier.Verify(dir, device);
        Console.Write(ReferenceVerifier.Format(rows));
        int failed = rows.Count(r => r.Failed), passed = rows.Count(r => r.Status == "PASS");
        Console.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    /// <summary><c>convert OFFICIAL.pth --preset NAME --out FILE [--half]</c>.</summary>
    public static Command Convert()
    {
        var input = new Argument<string>("OFFICIAL.pth") { Description = "a checkpoint of the official PyTorch code" };
        var preset = CliOptions.Required("--preset", "NAME", "the preset the checkpoint was trained with (see presets)");
        var output = CliOptions.Required("--out", "FILE.safetensors", "where to write FractalMesh's format (weights and configuration)");
        var half = CliOptions.Flag("--half", "store the weights in half precision");
        var command = new Command("convert", "convert an official checkpoint to FractalMesh's format") { input, preset, output, half };
        command.SetAction(r => Convert(r.GetValue(input)!, r.GetValue(preset)!, r.GetValue(output)!, r.GetValue(half)));
        return command;
    }

    static int Convert(string input, string preset, string output, bool half)
    {
        FractalConfig config;
        try { config = FractalMesh.Model.Config.Presets.Get(preset); }
        catch (ArgumentException e) { throw new UsageException($"--preset: {e.Message}"); }
        if (!File.Exists(input)) throw new UsageException($"OFFICIAL.pth: {input} not found");
        ModelCheckpoint.ConvertOfficial(input, config, output, half);
        Console.WriteLine($"wrote {output}");
        return 0;
    }

    /// <summary><c>export RUN --out FILE [--half] [--classes-from MANIFEST] [--recommend SETTINGS]</c>: a trained checkpoint for shipping.</summary>
    public static Command Export()
    {
        var input = new Argument<string>("RUN") { Description = "a training run's folder (its latest state) or a checkpoint file (its class names and recommended settings are kept)" };
        var output = CliOptions.Required("--out", "FILE", "where to write the .safetensors");
        var half = CliOptions.Flag("--half", "store the weights in half precision");
        var manifest = CliOptions.Text("--classes-from", "MANIFEST", "a dataset's manifest.json whose class names go into the checkpoint");
        var recommend = CliOptions.Text("--recommend", "SETTINGS",
            "the sampling settings that draw this model's best samples, e.g. cfg=4,schedule=constant,temperature=1.2,filter=0.001 (the web page starts from them)");
        var command = new Command("export", "write a trained checkpoint for shipping") { input, output, half, manifest, recommend };
        command.SetAction(r => Export(r.GetValue(input)!, r.GetValue(output)!, r.GetValue(half), r.GetValue(manifest), r.GetValue(recommend)));
        return command;
    }

    static int Export(string input, string output, bool half, string? manifest, string? recommend)
    {
        input = CheckpointOf(input, "RUN");
        var metadata = new Dictionary<string, string>();
        // A shipped checkpoint exported again (to half precision, or with new settings) keeps what it said about itself.
        foreach (var (key, value) in SafeTensors.ReadMetadata(input))
            if (key is ModelCheckpoint.ClassNamesKey or RecommendedSampling.MetadataKey) metadata[key] = value;
        if (recommend is not null)
        {
            try { metadata[RecommendedSampling.MetadataKey] = RecommendedSampling.Parse(recommend).ToJson(); }
            catch (FormatException e) { throw new UsageException($"--recommend: {e.Message}"); }
        }
        if (manifest is not null)
        {
            if (!File.Exists(manifest)) throw new UsageException($"--classes-from: {manifest} not found");
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(manifest));
            if (!doc.RootElement.TryGetProperty("classNames", out var names)) throw new UsageException($"--classes-from: {manifest} has no classNames");
            metadata[ModelCheckpoint.ClassNamesKey] = names.GetRawText();
        }
        using var model = ModelCheckpoint.Load(input);
        ModelCheckpoint.Save(model, output, half, metadata);
        Console.WriteLine($"wrote {output} ({new FileInfo(output).Length / 1e6:F1} MB{(half ? ", half precision" : "")})");
        return 0;
    }

    /// <summary>A checkpoint file as given, or a training run folder's latest checkpoint; <paramref name="argument"/> names it in the error.</summary>
    static string CheckpointOf(string input, string argument)
    {
        if (Directory.Exists(input)) input = Trainer.FindState(input) is { } state ? Path.Combine(state, Trainer.CheckpointFile) : Path.Combine(input, Trainer.CheckpointFile);
        if (!File.Exists(input)) throw new UsageException($"{argument}: {input} not found");
        return input;
    }

    /// <summary><c>grow MODEL --level L --blocks N --out FILE [--seed S] [--half]</c>: a deeper model that computes the same function.</summary>
    public static Command Grow()
    {
        var input = new Argument<string>("MODEL") { Description = "a FractalMesh checkpoint (.safetensors), or a training run's folder (its latest state)" };
        var level = CliOptions.Int("--level", "the level to deepen (0 is the coarsest; the last is the pixel head)", 0, min: 0);
        var blocks = CliOptions.Int("--blocks", "the level's transformer blocks after growing (at least what it has)", 0, min: 1);
        var output = CliOptions.Required("--out", "FILE", "where to write the grown .safetensors");
        var seed = CliOptions.Long("--seed", "seed of the new blocks' random weights", 0);
        var half = CliOptions.Flag("--half", "store the weights in half precision");
        var command = new Command("grow",
            "add blocks to one level of a trained model; they start as the identity, so it computes the same until train --init moves it")
            { input, level, blocks, output, seed, half };
        command.SetAction(r => Grow(r.GetValue(input)!, r.GetValue(level), r.GetValue(blocks), r.GetValue(output)!, r.GetValue(seed), r.GetValue(half)));
        return command;
    }

    static int Grow(string input, int level, int blocks, string output, long seed, bool half)
    {
        input = CheckpointOf(input, "MODEL");
        var metadata = SafeTensors.ReadMetadata(input).Where(kv => kv.Key is ModelCheckpoint.ClassNamesKey or RecommendedSampling.MetadataKey).ToDictionary();
        using var source = ModelCheckpoint.Load(input);
        if (level >= source.Config.Blocks.Length)
            throw new UsageException($"--level: {level} is not a level of this model (0 to {source.Config.Blocks.Length - 1}; the last is the pixel head)");
        if (blocks < source.Config.Blocks[level])
            throw new UsageException($"--blocks: level {level} already has {source.Config.Blocks[level]} blocks; growing cannot remove any");
        manual_seed(seed);
        using var grown = ModelGrowth.Deepen(source, level, blocks);
        ModelCheckpoint.Save(grown, output, half, metadata);
        Console.WriteLine($"wrote {output}: level {level} has {blocks} blocks (was {source.Config.Blocks[level]}), " +
                          $"{ParameterCount(grown.Config):N0} parameters (was {ParameterCount(source.Config):N0})");
        return 0;
    }

    /// <summary><c>presets</c>.</summary>
    public static Command Presets()
    {
        var command = new Command("presets", "list the presets and their parameter counts");
        command.SetAction(_ => ListPresets());
        return command;
    }

    static int ListPresets()
    {
        foreach (var (name, config) in FractalMesh.Model.Config.Presets.All)
        {
            long count = ParameterCount(config);
            Console.WriteLine($"{name,-24} {count,14:N0} parameters  sizes {string.Join("/", config.ImageSizes)}  widths {string.Join("/", config.Widths)}");
        }
        return 0;
    }

    /// <summary>Counts parameters on the meta device, so the 850M-parameter presets allocate nothing.</summary>
    public static long ParameterCount(FractalConfig config)
    {
        set_default_device(META);
        try
        {
            using var model = new FractalModel(config);
            return model.parameters().Sum(p => p.numel());
        }
        finally { set_default_device(CPU); }
    }
}
