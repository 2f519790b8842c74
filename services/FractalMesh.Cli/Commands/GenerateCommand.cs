using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FractalMesh.Imaging;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Sampling;
using FractalMesh.Training;

namespace FractalMesh.Cli.Commands;

/// <summary>The four sampling commands; all but generate start from an image.</summary>
public enum GenerateMode { Generate, Inpaint, Outpaint, Uncrop }

/// <summary>What a sampling command was asked for, parsed and typed; local-only and remote-only values are null when not given.</summary>
public sealed record GenerateSettings(
    GenerateMode Mode, string? Model, string? Preset, string? Device, string Classes, int Count, long Seed,
    double Cfg, string Schedule, double Temperature, string TemperatureSchedule, double Filter, int[]? Iters, string Out,
    string? Image, string? Mask, string? At, string? Keep, Uri? Endpoint, bool Rest, string? ApiKey, string? Classifier = null)
{
    /// <summary>The command's name, and the prefix of every file it writes.</summary>
    public string Name => Mode.ToString().ToLowerInvariant();
}

/// <summary>
/// <c>fractalmesh generate | inpaint | outpaint | uncrop</c>: sampling in this process (the embedded default), or through a
/// gateway with <c>--endpoint</c> (<see cref="RemoteGenerate"/>).
/// </summary>
public static class GenerateCommand
{
    public const string DefaultModel = "models/emoji32-demo.safetensors";

    static readonly Dictionary<GenerateMode, string> Descriptions = new()
    {
        [GenerateMode.Generate] = "generate images (one PNG per seed, plus a grid)",
        [GenerateMode.Inpaint] = "regenerate the white part of a mask, keep the rest (class-conditional editing: another --class)",
        [GenerateMode.Outpaint] = "place a smaller image on the canvas and generate around it",
        [GenerateMode.Uncrop] = "keep a rectangle of the image and generate around it",
    };

    /// <summary>The command for <paramref name="mode"/>: the shared sampling options and that mode's own.</summary>
    public static Command Create(GenerateMode mode)
    {
        var model = CliOptions.Text("--model", "FILE", $"a FractalMesh .safetensors, an official .pth with --preset, or a folder with config.json and checkpoint-last.pth (default {DefaultModel})");
        var preset = CliOptions.Text("--preset", "NAME", "the preset of an official .pth");
        var device = CliOptions.Text("--device", "cpu|cuda[:N]", "where the model is loaded (default cpu)");
        var classes = mode == GenerateMode.Generate
            ? CliOptions.Text("--class", "LIST", "classes by index or name prefix, comma-separated; -1: unconditional", "0")
            : CliOptions.Required("--class", "C", "the class to generate with, by index or name prefix; -1: unconditional");
        var count = CliOptions.Int("--count", "images per class", 1, 1, 1024);
        var seed = CliOptions.Long("--seed", "the first image's seed; image i uses seed + i", 0, 0);
        var cfg = CliOptions.Number("--cfg", "classifier-free guidance scale, 1 (none) to 50", 1, 1, 50);
        var schedule = CliOptions.Choice("--schedule", "how guidance grows over level 0's steps", "linear", "linear", "constant");
        var temperature = CliOptions.Number("--temperature", "multiplies the pixel logits", 1, 0.01, 100);
        var temperatureSchedule = CliOptions.Choice("--temperature-schedule", "constant, or linear: growing from 1 towards --temperature over level 0's steps as linear guidance grows (fewer nearly blank images at a sharpening temperature)", "constant", "constant", "linear");
        var filter = CliOptions.Number("--filter", "guidance never promotes a value below this probability (higher: fewer stray pixels)",
            // The float's shortest decimal, so help says 0.0001 and not its double widening (9.999999747378752E-05).
            double.Parse(SamplingOptions.DefaultFilterThreshold.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture), 0, 1);
        var iters = CliOptions.IntList("--iters", "A,B,..", "iterations per level (default the model's)", 1, 4096);
        var output = CliOptions.Text("--out", "DIR", "where the PNGs go", "out");
        var endpoint = new Option<Uri?>("--endpoint")
        {
            HelpName = "URL",
            Description = "call a running gateway over gRPC instead (e.g. http://localhost:5080); it chooses model and device",
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https") return uri;
                r.AddError($"--endpoint: '{text}' is not an http(s) URL (the gateway's gRPC address, e.g. http://localhost:5080)");
                return null;
            },
        };
        var rest = CliOptions.Flag("--rest", "with --endpoint: the URL is the gateway's REST bridge (e.g. http://localhost:5081)");
        var apiKey = CliOptions.Text("--api-key", "KEY", "with --endpoint: sent as 'Authorization: Bearer KEY'");
        var command = new Command(mode.ToString().ToLowerInvariant(), Descriptions[mode]) { model, preset, device, classes, count, seed, cfg, schedule, temperature, temperatureSchedule, filter, iters, output };
        Option<string>? image = null, mask = null, keep = null;
        Option<string?>? at = null, classifier = null;
        if (mode == GenerateMode.Generate) command.Options.Add(classifier = CliOptions.Text("--classifier", "FILE",
            "score the images with a classifier (fractalmesh classifier): how many it takes for the class they were asked for"));
        if (mode != GenerateMode.Generate) command.Options.Add(image = CliOptions.Required("--image", "PNG", mode == GenerateMode.Outpaint
            ? "the image to place, no larger than the canvas" : "the image, of the model's size"));
        if (mode == GenerateMode.Inpaint) command.Options.Add(mask = CliOptions.Required("--mask", "PNG", "same size as the image; white means generate"));
        if (mode == GenerateMode.Outpaint) command.Options.Add(at = CliOptions.Text("--at", "X,Y", "where the image's top-left corner goes (default centred)"));
        if (mode == GenerateMode.Uncrop) command.Options.Add(keep = CliOptions.Required("--keep", "X,Y,W,H", "the rectangle to keep"));
        if (mode != GenerateMode.Uncrop)
        {
            command.Options.Add(endpoint);
            command.Options.Add(rest);
            command.Options.Add(apiKey);
        }
        command.SetAction((r, cancel) =>
        {
            var settings = new GenerateSettings(mode, r.GetValue(model), r.GetValue(preset), r.GetValue(device), r.GetValue(classes)!,
                r.GetValue(count), r.GetValue(seed), r.GetValue(cfg), r.GetValue(schedule)!, r.GetValue(temperature), r.GetValue(temperatureSchedule)!, r.GetValue(filter),
                r.ListOrNull(iters), r.GetValue(output)!, image is null ? null : r.GetValue(image), mask is null ? null : r.GetValue(mask),
                at is null ? null : r.GetValue(at), keep is null ? null : r.GetValue(keep),
                mode == GenerateMode.Uncrop ? null : r.GetValue(endpoint), mode != GenerateMode.Uncrop && r.GetValue(rest),
                mode == GenerateMode.Uncrop ? null : r.GetValue(apiKey), classifier is null ? null : r.GetValue(classifier));
            return settings.Endpoint is not null ? RemoteGenerate.RunAsync(settings, cancel) : Task.FromResult(Run(settings));
        });
        return command;
    }

    /// <summary>Samples in this process.</summary>
    public static int Run(GenerateSettings s)
    {
        if (s.Rest) throw new UsageException("--rest: give the gateway's REST address with --endpoint");
        if (s.ApiKey is not null) throw new UsageException("--api-key: only with --endpoint");
        string mode = s.Name;
        string modelPath = s.Model ?? DefaultModel;
        var device = ModelCommands.ParseDevice(s.Device ?? "cpu");
        float cfg = (float)s.Cfg, temperature = (float)s.Temperature, filter = (float)s.Filter;
        string outDir = s.Out;
        if (!File.Exists(modelPath) && !Directory.Exists(modelPath))
            throw new UsageException($"--model: {modelPath} not found");
        if (s.Classifier is not null && !File.Exists(s.Classifier)) throw new UsageException($"--classifier: {s.Classifier} not found");
        var names = ModelCheckpoint.ReadClassNames(modelPath);
        using var model = ModelCheckpoint.Open(modelPath, s.Preset, device);
        var config = model.Config;
        var labels = ParseClasses(s.Classes, names, config.ClassNum);
        int[] numIter = s.Iters ?? SamplingOptions.DefaultNumIter(config);
        if (numIter.Length != config.Levels) throw new UsageException($"--iters: the model has {config.Levels} levels, got {numIter.Length} values");

        int size = config.ImageSizes[0];
        byte[]? known = null;
        bool[]? mask = null;
        if (s.Image is not null) (known, mask) = KnownPixels(mode, s.Image, s.Mask, s.At ?? s.Keep, size);

        var requests = new List<ImageRequest>();
        foreach (var label in labels)
            for (int k = 0; k < s.Count; k++) requests.Add(new ImageRequest(label, s.Seed + requests.Count, known, mask));

        // The classifier is read and matched to the model before sampling, so a wrong file costs no sampling time.
        using var classifier = s.Classifier is null ? null : CheckedClassifier(s.Classifier, requests, size, config.ClassNum);

        var sampler = new FractalSampler(model);
        var options = new SamplingOptions { Cfg = cfg, Temperature = temperature, FilterThreshold = filter, LinearCfg = s.Schedule == "linear", LinearTemperature = s.TemperatureSchedule == "linear", NumIter = numIter };
        NameTheRecommendation(ModelCheckpoint.ReadRecommendedSampling(modelPath), s);
        Console.WriteLine($"{mode}: {requests.Count} image(s) of {size}×{size}, classes {string.Join(", ", labels.Distinct().Select(l => Name(l, names)))}, iterations {string.Join(",", numIter)}, cfg {cfg.ToString(CultureInfo.InvariantCulture)}, temperature {temperature.ToString(CultureInfo.InvariantCulture)}{(options.LinearTemperature ? " (linear from 1)" : "")}");
        var timer = Stopwatch.StartNew();
        var bytes = sampler.Generate(requests, options, step =>
            Console.Write($"\r  level-0 step {step.Step + 1}/{step.Steps}  {100.0 * step.Done.Count(d => d) / step.Done.Length:F0}% of pixels  {timer.Elapsed.TotalSeconds:F1}s   "));
        Console.WriteLine();
        Directory.CreateDirectory(outDir);
        int imageBytes = 3 * size * size;
        var images = new List<byte[]>();
        for (int i = 0; i < requests.Count; i++)
        {
            var image = bytes.AsSpan(i * imageBytes, imageBytes).ToArray();
            images.Add(image);
            string file = Path.Combine(outDir, $"{mode}-seed{requests[i].Seed}.png");
            File.WriteAllBytes(file, PngImage.Encode(image, size, size));
            Console.WriteLine($"  seed {requests[i].Seed}  class {Name(requests[i].Label, names)}  -> {file}");
        }
        var (grid, gw, gh) = PngImage.Grid(images, size, Math.Min(8, images.Count));
        string gridPath = Path.GetFullPath(Path.Combine(outDir, $"{mode}-grid.png"));
        File.WriteAllBytes(gridPath, PngImage.Encode(grid, gw, gh, scale: 4));
        Console.WriteLine($"{requests.Count} image(s) in {timer.Elapsed.TotalSeconds:F1}s ({timer.Elapsed.TotalSeconds / requests.Count:F2}s per image)");
        int blank = images.Count(image => NearlyBlank.Is(image, size, size));
        Console.WriteLine($"nearly blank (at least {NearlyBlank.Share * 100:F0} % of pixels with every channel ≥ {NearlyBlank.NearWhite}): {blank} of {images.Count}");
        double stray = images.Average(image => StrayPixels.Count(image, size, size));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"stray pixels (unlike each of their 4 neighbours by more than {StrayPixels.Difference} in a channel): {stray:F2} per image"));
        Console.WriteLine($"wrote {gridPath}");
        if (classifier is not null) Score(classifier, s.Classifier!, images, requests, config.ClassNum);
        return 0;
    }

    /// <summary>Loads the --classifier file and checks that it can score these requests from this model.</summary>
    static SampleClassifier CheckedClassifier(string path, List<ImageRequest> requests, int size, int classNum)
    {
        if (requests.All(r => r.Label < 0)) throw new UsageException("--classifier: scores class-conditional images; --class -1 has no class to agree with");
        SampleClassifier classifier;
        try { classifier = SampleClassifier.Load(path); }
        catch (InvalidDataException e) { throw new UsageException($"--classifier: {e.Message}"); }
        if (classifier.ImageSize == size && classifier.ClassNames.Count == classNum) return classifier;
        classifier.Dispose();
        throw new UsageException($"--classifier: {path} takes {classifier.ImageSize}×{classifier.ImageSize} images in {classifier.ClassNames.Count} classes; the model makes {size}×{size} in {classNum}");
    }

    /// <summary>Prints how many images of each requested class the classifier takes for that class.</summary>
    static void Score(SampleClassifier classifier, string path, List<byte[]> images, List<ImageRequest> requests, int classNum)
    {
        var conditional = Enumerable.Range(0, requests.Count).Where(i => requests[i].Label >= 0).ToArray();
        var predicted = classifier.Predict(conditional.SelectMany(i => images[i]).ToArray(), conditional.Length);
        Console.WriteLine($"classifier {path}: images taken for the class they were asked for");
        ClassifierCommand.PrintAgreement(SampleClassifier.Agreement(predicted, conditional.Select(i => requests[i].Label).ToArray(), classNum), classifier.ClassNames);
    }

    static (byte[] Known, bool[] Mask) KnownPixels(string mode, string imagePath, string? maskPath, string? at, int size)
    {
        if (!File.Exists(imagePath)) throw new UsageException($"--image: {imagePath} not found");
        byte[] planar; int w, h;
        try { (planar, w, h) = PngImage.Decode(File.ReadAllBytes(imagePath), imagePath); }
        catch (InvalidDataException) { throw new UsageException($"--image: {imagePath} is not a readable PNG"); }
        var known = new byte[3 * size * size];
        var mask = new bool[size * size];
        if (mode == "uncrop")
        {
            // Same-size canvas: keep the rectangle x,y,w,h of the image and generate everything around it.
            if (w != size || h != size) throw new UsageException($"--image: {w}×{h}, the model makes {size}×{size}");
            var r = (at ?? "").Split(',');
            if (r.Length != 4 || !int.TryParse(r[0], out int kx) || !int.TryParse(r[1], out int ky) || !int.TryParse(r[2], out int kw) || !int.TryParse(r[3], out int kh)
                || kx < 0 || ky < 0 || kw < 1 || kh < 1 || kx + kw > size || ky + kh > size)
                throw new UsageException($"--keep: '{at}' is not x,y,w,h inside {size}×{size}");
            planar.CopyTo(known, 0);
            for (int y = ky; y < ky + kh; y++)
                for (int x = kx; x < kx + kw; x++) mask[y * size + x] = true;
            return (known, mask);
        }
        if (mode == "inpaint")
        {
            if (w != size || h != size) throw new UsageException($"--image: {w}×{h}, the model makes {size}×{size}");
            if (!File.Exists(maskPath)) throw new UsageException($"--mask: {maskPath} not found");
            byte[] m; int mw, mh;
            try { (m, mw, mh) = PngImage.Decode(File.ReadAllBytes(maskPath!), maskPath!); }
            catch (InvalidDataException) { throw new UsageException($"--mask: {maskPath} is not a readable PNG"); }
            if (mw != w || mh != h) throw new UsageException($"--mask: {mw}×{mh} does not match the image's {w}×{h}");
            planar.CopyTo(known, 0);
            for (int i = 0; i < size * size; i++) mask[i] = m[i] < 128; // white means generate
            return (known, mask);
        }
        // Outpaint / uncrop: place the image on the model's canvas (centred, or at --at x,y) and generate the rest.
        if (w > size || h > size) throw new UsageException($"--image: {w}×{h} is larger than the {size}×{size} canvas");
        int ox = (size - w) / 2, oy = (size - h) / 2;
        if (at is not null)
        {
            var parts = at.Split(',');
            if (parts.Length != 2 || !int.TryParse(parts[0], out ox) || !int.TryParse(parts[1], out oy) || ox < 0 || oy < 0 || ox + w > size || oy + h > size)
                throw new UsageException($"--at: '{at}' is not x,y placing the {w}×{h} image inside {size}×{size}");
        }
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    known[c * size * size + (oy + y) * size + ox + x] = planar[c * w * h + y * w + x];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) mask[(oy + y) * size + ox + x] = true;
        return (known, mask);
    }

    static string Name(int label, IReadOnlyList<string> names) => label < 0 ? "unconditional" : label < names.Count ? names[label] : label.ToString(CultureInfo.InvariantCulture);

    /// <summary>Prints the model's recommended settings when the command samples at others.</summary>
    internal static void NameTheRecommendation(RecommendedSampling? recommended, GenerateSettings s)
    {
        if (recommended is not null && recommended != new RecommendedSampling((float)s.Cfg, s.Schedule, (float)s.Temperature, s.TemperatureSchedule, (float)s.Filter))
            Console.WriteLine($"the model recommends {recommended.AsOptions()} (its author's choice for its best samples)");
    }

    /// <summary>
    /// Class labels from indices and unique name prefixes (<paramref name="names"/>: the model's); indices are checked
    /// against <paramref name="classNum"/> unless it is null (a gateway checks them itself and names the field).
    /// </summary>
    internal static List<int> ParseClasses(string arg, IReadOnlyList<string> names, int? classNum)
    {
        var labels = new List<int>();
        foreach (var raw in arg.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out int index))
            {
                if (classNum is { } n && (index < -1 || index >= n)) throw new UsageException($"--class: {index} is outside 0..{n - 1} (-1: unconditional)");
                labels.Add(index);
                continue;
            }
            var matches = names.Select((n, i) => (n, i)).Where(p => p.n.StartsWith(raw, StringComparison.OrdinalIgnoreCase)).ToList();
            if (matches.Count != 1)
                throw new UsageException($"--class: unknown class '{raw}'" + (names.Count > 0 ? $" (known: {string.Join(", ", names)})" : " (this model has no class names; use indices)"));
            labels.Add(matches[0].i);
        }
        if (labels.Count == 0) throw new UsageException("--class: no class given");
        return labels;
    }
}
