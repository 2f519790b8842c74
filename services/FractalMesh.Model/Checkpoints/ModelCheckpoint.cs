using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace FractalMesh.Model.Checkpoints;

/// <summary>A checkpoint whose tensors do not match the model: every missing, unexpected and mis-shaped key is listed.</summary>
public sealed class CheckpointMismatchException(string message) : IOException(message);

/// <summary>
/// Loads official <c>checkpoint-last.pth</c> files and FractalMesh's own safetensors checkpoints
/// (weights plus the configuration in the metadata), and writes the latter.
/// </summary>
public static class ModelCheckpoint
{
    /// <summary>Metadata key holding the configuration JSON (the official constructor arguments).</summary>
    public const string ConfigKey = "config";
    /// <summary>Metadata key naming the format, so a foreign safetensors file is told apart.</summary>
    public const string FormatKey = "format";
    public const string FormatName = "fractalmesh-v1";

    /// <summary>
    /// Copies <paramref name="stateDict"/> into <paramref name="model"/> key for key, converting dtype (for example half-precision
    /// weights) and device. Throws <see cref="CheckpointMismatchException"/> listing every missing, unexpected or mis-shaped key.
    /// </summary>
    public static void LoadInto(FractalModel model, IEnumerable<KeyValuePair<string, Tensor>> stateDict, string source)
    {
        var target = model.state_dict();
        var given = stateDict.ToDictionary(kv => kv.Key, kv => kv.Value);
        var missing = target.Keys.Where(k => !given.ContainsKey(k)).ToList();
        var unexpected = given.Keys.Where(k => !target.ContainsKey(k)).ToList();
        var misShaped = target.Keys.Where(given.ContainsKey)
            .Where(k => !target[k].shape.SequenceEqual(given[k].shape))
            .Select(k => $"{k}: checkpoint {Shape(given[k])}, model {Shape(target[k])}").ToList();
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
        {
            static string List(string title, List<string> items) =>
                items.Count == 0 ? "" : $"\n  {title} ({items.Count}): {string.Join(", ", items.Take(20))}{(items.Count > 20 ? ", …" : "")}";
            throw new CheckpointMismatchException(
                $"{source} does not match the model (levels {string.Join("/", model.Config.ImageSizes)}, widths {string.Join("/", model.Config.Widths)})" +
                List("missing keys", missing) + List("unexpected keys", unexpected) + List("mis-shaped keys", misShaped));
        }
        using var _ = no_grad();
        foreach (var (name, t) in target)
        {
            t.copy_(given[name]);
        }
    }

    static string Shape(Tensor t) => t.shape.Length == 0 ? "scalar" : string.Join("x", t.shape);

    /// <summary>Writes the model's weights (optionally in half precision) and configuration as safetensors.</summary>
    public static void Save(FractalModel model, string path, bool halfPrecision = false, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        using var scope = NewDisposeScope();
        var tensors = model.state_dict()
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key, (halfPrecision ? kv.Value.to_type(ScalarType.Float16) : kv.Value).detach().cpu()))
            .ToList();
        var metadata = new Dictionary<string, string>(extraMetadata ?? new Dictionary<string, string>())
        {
            [FormatKey] = FormatName,
            [ConfigKey] = model.Config.ToJson(),
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafeTensors.Write(path, tensors, metadata);
    }

    /// <summary>Builds the model described by a FractalMesh checkpoint and loads its weights.</summary>
    public static FractalModel Load(string path, Device? device = null) => Load(path, device, 0);

    /// <summary>The levels from <paramref name="fromLevel"/> down of a FractalMesh checkpoint, reading only their tensors.</summary>
    public static FractalModel Load(string path, Device? device, int fromLevel)
    {
        var config = ReadConfig(path);
        int level = Math.Min(fromLevel, config.Levels - 1);
        string prefix = FractalModel.KeyPrefix(level);
        var (tensors, _) = SafeTensors.Read(path, name => name.StartsWith(prefix, StringComparison.Ordinal));
        try
        {
            return Prepared(FractalModel.FromLevel(config, level), tensors.Select(kv => KeyValuePair.Create(kv.Key[prefix.Length..], kv.Value)), path, device);
        }
        finally
        {
            foreach (var kv in tensors) kv.Value.Dispose();
        }
    }

    /// <summary>The configuration stored in a FractalMesh checkpoint's metadata.</summary>
    public static FractalConfig ReadConfig(string path) =>
        SafeTensors.ReadMetadata(path).TryGetValue(ConfigKey, out var json)
            ? FractalConfig.FromJson(json)
            : throw new InvalidDataException($"{path} is a safetensors file without a FractalMesh configuration in its metadata");

    /// <summary>
    /// The configuration of whatever <see cref="Open(string, string?, Device?)"/> accepts, without loading a weight: a FractalMesh checkpoint's
    /// metadata, a reference folder's <c>config.json</c>, or the preset of an official <c>.pth</c>.
    /// </summary>
    public static FractalConfig OpenConfig(string path, string? preset = null)
    {
        if (Directory.Exists(path))
        {
            string config = Path.Combine(path, "config.json");
            if (!File.Exists(config)) throw new FileNotFoundException($"{path} is a folder but lacks config.json");
            return FractalConfig.FromJson(File.ReadAllText(config));
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
        if (path.EndsWith(".pth", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".pt", StringComparison.OrdinalIgnoreCase))
            return preset is null
                ? throw new ArgumentException($"{path} is an official checkpoint: name its preset too ({string.Join(", ", Presets.All.Keys)})")
                : Presets.Get(preset);
        return ReadConfig(path);
    }

    /// <summary>Loads the weights of a FractalMesh checkpoint into <paramref name="model"/> (key for key, shapes checked), in float32.</summary>
    public static void LoadWeights(FractalModel model, string path)
    {
        var (tensors, _) = ReadOwn(path);
        try { LoadInto(model, tensors, path); }
        finally { foreach (var kv in tensors) kv.Value.Dispose(); }
    }

    /// <summary>Builds a model from <paramref name="config"/> and loads an official <c>checkpoint-last.pth</c> into it.</summary>
    public static FractalModel LoadOfficial(string path, FractalConfig config, Device? device = null) => LoadOfficial(path, config, device, 0);

    /// <summary>The levels from <paramref name="fromLevel"/> down of an official checkpoint (the others' tensors are dropped as read).</summary>
    public static FractalModel LoadOfficial(string path, FractalConfig config, Device? device, int fromLevel)
    {
        int level = Math.Min(fromLevel, config.Levels - 1);
        string prefix = FractalModel.KeyPrefix(level);
        using var file = TorchCheckpointReader.ReadCheckpoint(path);
        var weights = file.Model.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(kv => KeyValuePair.Create(kv.Key[prefix.Length..], kv.Value));
        return Prepared(FractalModel.FromLevel(config, level), weights, path, device);
    }

    /// <summary>Loads the weights, moves the model and puts it in evaluation mode; a model whose weights do not fit is disposed.</summary>
    static FractalModel Prepared(FractalModel model, IEnumerable<KeyValuePair<string, Tensor>> weights, string path, Device? device)
    {
        try
        {
            LoadInto(model, weights, path);
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Converts an official checkpoint to FractalMesh's format.</summary>
    public static void ConvertOfficial(string officialPath, FractalConfig config, string outputPath, bool halfPrecision = false)
    {
        using var model = LoadOfficial(officialPath, config);
        Save(model, outputPath, halfPrecision);
    }

    /// <summary>
    /// Resolves what a user passes as <c>--model</c>: a FractalMesh .safetensors file, a folder with <c>config.json</c> and
    /// <c>checkpoint-last.pth</c> (the reference layout), or an official .pth together with a preset name.
    /// </summary>
    public static FractalModel Open(string path, string? preset = null, Device? device = null) => Open(path, preset, device, 0);

    /// <summary>
    /// As <see cref="Open(string, string?, Device?)"/>, but only the levels from <paramref name="fromLevel"/> down (and the
    /// pixel head): the weights of the levels above are never read into memory (a level service of a lower level).
    /// </summary>
    public static FractalModel Open(string path, string? preset, Device? device, int fromLevel)
    {
        if (Directory.Exists(path))
        {
            string config = Path.Combine(path, "config.json"), pth = Path.Combine(path, "checkpoint-last.pth");
            if (!File.Exists(config) || !File.Exists(pth))
                throw new FileNotFoundException($"{path} is a folder but lacks config.json or checkpoint-last.pth");
            return LoadOfficial(pth, FractalConfig.FromJson(File.ReadAllText(config)), device, fromLevel);
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
        if (path.EndsWith(".pth", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".pt", StringComparison.OrdinalIgnoreCase))
        {
            if (preset is null) throw new ArgumentException($"{path} is an official checkpoint: name its preset too ({string.Join(", ", Presets.All.Keys)})");
            return LoadOfficial(path, Presets.Get(preset), device, fromLevel);
        }
        return Load(path, device, fromLevel);
    }

    /// <summary>Metadata key of the class names (a JSON array in label order), where the training data named them.</summary>
    public const string ClassNamesKey = "class_names";

    /// <summary>The class names stored with a FractalMesh checkpoint, or an empty list.</summary>
    public static IReadOnlyList<string> ReadClassNames(string path) =>
        MetadataOf(path).TryGetValue(ClassNamesKey, out var json)
            ? System.Text.Json.JsonSerializer.Deserialize<string[]>(json) ?? []
            : [];

    /// <summary>
    /// The sampling settings stored with a FractalMesh checkpoint (<see cref="RecommendedSampling.MetadataKey"/>), or null
    /// where it has none (any other model file). Throws <see cref="InvalidDataException"/> when the entry is malformed.
    /// </summary>
    public static RecommendedSampling? ReadRecommendedSampling(string path) =>
        MetadataOf(path).TryGetValue(RecommendedSampling.MetadataKey, out var json) ? RecommendedSampling.FromJson(json) : null;

    /// <summary>A safetensors file's metadata, read from its header; empty for anything else (an official .pth, a folder).</summary>
    static IReadOnlyDictionary<string, string> MetadataOf(string path) =>
        File.Exists(path) && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? SafeTensors.ReadMetadata(path)
            : new Dictionary<string, string>();

    static (List<KeyValuePair<string, Tensor>> Tensors, Dictionary<string, string> Metadata) ReadOwn(string path)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        if (!metadata.TryGetValue(ConfigKey, out _))
        {
            foreach (var kv in tensors) kv.Value.Dispose();
            throw new InvalidDataException($"{path} is a safetensors file without a FractalMesh configuration in its metadata");
        }
        return (tensors, metadata);
    }
}
