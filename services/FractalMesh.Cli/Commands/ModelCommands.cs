using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Reference;
using FractalMesh.Training;
using static TorchSharp.torch;

namespace FractalMesh.Cli.Commands;

/// <summary>Commands about models themselves: reference parity, checkpoint conversion, presets.</summary>
public static class ModelCommands
{
    /// <summary>Parses <c>--device</c> (cpu, cuda, cuda:N); CUDA needs the CUDA libtorch build.</summary>
    public static Device ParseDevice(Options o)
    {
        string name = o.Get("device") ?? "cpu";
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

    public static int VerifyReference(Options o)
    {
        string dir = o.Positional(0, "DIR");
        var device = ParseDevice(o);
        o.EnsureAllUsed();
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

    public static int Convert(Options o)
    {
        string input = o.Positional(0, "OFFICIAL.pth");
        string preset = o.Require("preset");
        string output = o.Require("out");
        bool half = o.Flag("half");
        o.EnsureAllUsed();
        FractalConfig config;
        try { config = Presets.Get(preset); }
        catch (ArgumentException e) { throw new UsageException($"--preset: {e.Message}"); }
        if (!File.Exists(input)) throw new UsageException($"OFFICIAL.pth: {input} not found");
        ModelCheckpoint.ConvertOfficial(input, config, output, half);
        Console.WriteLine($"wrote {output}");
        return 0;
    }

    /// <summary>Writes a trained checkpoint for shipping: optionally half precision, with the dataset's class names.</summary>
    public static int Export(Options o)
    {
        string input = o.Positional(0, "CHECKPOINT");
        string output = o.Require("out");
        bool half = o.Flag("half");
        string? manifest = o.Get("classes-from");
        o.EnsureAllUsed();
        if (Directory.Exists(input)) input = Trainer.FindState(input) is { } state ? Path.Combine(state, Trainer.CheckpointFile) : Path.Combine(input, Trainer.CheckpointFile);
        if (!File.Exists(input)) throw new UsageException($"CHECKPOINT: {input} not found");
        var metadata = new Dictionary<string, string>();
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

    public static int ListPresets()
    {
        foreach (var (name, config) in Presets.All)
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
