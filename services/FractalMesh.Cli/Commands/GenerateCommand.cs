using System.Diagnostics;
using System.Globalization;
using FractalMesh.Data;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Sampling;

namespace FractalMesh.Cli.Commands;

/// <summary><c>fractalmesh generate | inpaint | outpaint</c>: sampling in this process (the embedded default).</summary>
public static class GenerateCommand
{
    public const string DefaultModel = "models/emoji32-demo.safetensors";

    public static int Run(string mode, Options o)
    {
        string modelPath = o.Get("model") ?? DefaultModel;
        string? preset = o.Get("preset");
        var device = ModelCommands.ParseDevice(o);
        string classArg = o.Get("class") ?? (mode == "generate" ? "0" : throw new UsageException("missing --class"));
        int count = o.Int("count", 1, 1, 1024);
        long seed = o.Int("seed", 0, 0);
        float cfg = (float)o.Number("cfg", 1, 1, 50);
        string schedule = o.Get("schedule") ?? "linear";
        if (schedule is not ("linear" or "constant")) throw new UsageException($"--schedule: '{schedule}' is not linear or constant");
        float temperature = (float)o.Number("temperature", 1, 0.01, 100);
        float filter = (float)o.Number("filter", 1e-4, 0, 1);
        string? iters = o.Get("iters");
        string outDir = o.Get("out") ?? "out";
        string? imagePath = mode == "generate" ? null : o.Require("image");
        string? maskPath = mode == "inpaint" ? o.Require("mask") : null;
        string? at = mode == "outpaint" ? o.Get("at") : null;
        string? keep = mode == "uncrop" ? o.Require("keep") : null;
        o.EnsureAllUsed();

        if (!File.Exists(modelPath) && !Directory.Exists(modelPath))
            throw new UsageException($"--model: {modelPath} not found");
        var names = ModelCheckpoint.ReadClassNames(modelPath);
        using var model = ModelCheckpoint.Open(modelPath, preset, device);
        var config = model.Config;
        var labels = ParseClasses(classArg, names, config.ClassNum);
        int[] numIter = iters is null
            ? SamplingOptions.DefaultNumIter(config)
            : iters.Split(',').Select(v => Options.ParseInt(v.Trim(), "iters", 1, 4096)).ToArray();
        if (numIter.Length != config.Levels) throw new UsageException($"--iters: the model has {config.Levels} levels, got {numIter.Length} values");

        int size = config.ImageSizes[0];
        byte[]? known = null;
        bool[]? mask = null;
        if (imagePath is not null) (known, mask) = KnownPixels(mode, imagePath, maskPath, at ?? keep, size);

        var requests = new List<ImageRequest>();
        foreach (var label in labels)
            for (int k = 0; k < count; k++) requests.Add(new ImageRequest(label, seed + requests.Count, known, mask));

        var sampler = new FractalSampler(model);
        var options = new SamplingOptions { Cfg = cfg, Temperature = temperature, FilterThreshold = filter, LinearCfg = schedule == "linear", NumIter = numIter };
        Console.WriteLine($"{mode}: {requests.Count} image(s) of {size}×{size}, classes {string.Join(", ", labels.Distinct().Select(l => Name(l, names)))}, iterations {string.Join(",", numIter)}, cfg {cfg.ToString(CultureInfo.InvariantCulture)}");
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
        Console.WriteLine($"wrote {gridPath}");
        return 0;
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

    static List<int> ParseClasses(string arg, IReadOnlyList<string> names, int classNum)
    {
        var labels = new List<int>();
        foreach (var raw in arg.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out int index))
            {
                if (index < -1 || index >= classNum) throw new UsageException($"--class: {index} is outside 0..{classNum - 1} (-1: unconditional)");
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
