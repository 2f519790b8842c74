using System.Globalization;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace FractalMesh.Model.Reference;

/// <summary>One tensor of a reference case: how far FractalMesh's value is from the official one.</summary>
/// <param name="Name">The tensor's name in <c>expected.safetensors</c>.</param>
/// <param name="Shape">The reference shape, e.g. <c>3x16x64</c>.</param>
/// <param name="MaxAbs">Largest absolute difference (integers: number of differing entries).</param>
/// <param name="MaxRel">Largest absolute difference over the largest reference magnitude.</param>
/// <param name="Status">PASS, FAIL, INPUT (fed to the model, not recomputed) or UNCHECKED (a failure).</param>
public sealed record ParityRow(string Name, string Shape, double MaxAbs, double MaxRel, string Status)
{
    public bool Failed => Status is "FAIL" or "UNCHECKED";
}

/// <summary>
/// Recomputes every tensor of a reference case (<c>config.json</c>, <c>checkpoint-last.pth</c>, <c>expected.safetensors</c>
/// made by the official code) and compares: level inputs and outputs at every level, KV-cache steps, guiding pixels and their
/// loss, pixel-head targets, logits and loss, the whole model's evaluation loss and guided logits. Works for any number of
/// levels, both generator kinds, with or without guiding pixels. Each level is fed the reference's own inputs so that an
/// error is reported where it arises rather than where it accumulates.
/// </summary>
public static class ReferenceVerifier
{
    /// <summary>Tolerance that a correct float32 implementation meets (reference README).</summary>
    public const double Tolerance = 1e-4;

    /// <param name="caseDir">A folder with config.json, checkpoint-last.pth and expected.safetensors.</param>
    /// <param name="device">Where the model runs (CPU by default); the reference tensors are moved there to compare.</param>
    public static List<ParityRow> Verify(string caseDir, Device? device = null)
    {
        var config = FractalConfig.FromJson(File.ReadAllText(Path.Combine(caseDir, "config.json")));
        using var model = ModelCheckpoint.LoadOfficial(Path.Combine(caseDir, "checkpoint-last.pth"), config, device);
        var (list, _) = SafeTensors.Read(Path.Combine(caseDir, "expected.safetensors"));
        var expected = list.ToDictionary(kv => kv.Key, kv => OnDevice(kv.Value, device));
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            return Run(model, expected);
        }
        finally
        {
            foreach (var t in expected.Values) t.Dispose();
        }
    }

    static List<ParityRow> Run(FractalModel model, Dictionary<string, Tensor> expected)
    {
        var rows = new Dictionary<string, ParityRow>();
        void Compare(string name, Tensor actual)
        {
            if (!expected.TryGetValue(name, out var want)) return;
            rows[name] = Measure(name, actual, want);
        }
        Tensor Want(string name) => expected.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"expected.safetensors lacks '{name}', which this model needs as an input");
        void Input(string name) { if (expected.TryGetValue(name, out var t)) rows[name] = new ParityRow(name, ShapeOf(t), 0, 0, "INPUT"); }

        var config = model.Config;
        Input("input.images_u8");
        Input("input.labels");
        var labels = Want("input.labels");
        var images = Pixels.Normalize(Want("input.images_u8"));

        var classCond = model.ClassConditions(labels);
        Compare("level0.cond_in.0", classCond);
        IReadOnlyList<Tensor> conds = Enumerable.Repeat(expected.GetValueOrDefault("level0.cond_in.0") ?? classCond, 5).ToArray();

        var level = model;
        for (int l = 0; l < config.Levels; l++, level = level.Next!)
        {
            var gen = level.Generator;
            string prefix = $"level{l}.";
            var patches = Pixels.Patchify(images, gen.PatchSize);
            Compare(prefix + "patches", patches);
            patches = expected.GetValueOrDefault(prefix + "patches") ?? patches;

            Tensor[] outputs;
            Tensor keep;
            if (gen is MarGenerator mar)
            {
                var inputs = conds.Take(mar.NumConds).ToList();
                if (mar.GuidingPixelHead is { } head)
                {
                    var guiding = images.mean([-1L, -2L]);
                    Compare(prefix + "guiding_pixel", guiding);
                    guiding = expected.GetValueOrDefault(prefix + "guiding_pixel") ?? guiding;
                    Compare(prefix + "guiding_pixel_loss", head.Loss(guiding, conds).reshape(1));
                    inputs.Add(guiding);
                }
                var mask = Want(prefix + "mask");
                Input(prefix + "mask");
                outputs = mar.Predict(patches, mask, inputs);
                keep = mask.reshape(-1).nonzero().squeeze(1);
            }
            else
            {
                var ar = (ArGenerator)gen;
                outputs = [ar.Predict(patches, conds)];
                using var cache = ar.NewCache();
                var steps = new List<Tensor>();
                for (int s = 0; s < ar.SeqLen; s++)
                {
                    steps.Add(ar.Step(s == 0 ? null : patches.select(1, s - 1), conds[0], s, cache));
                }
                Compare(prefix + "kv_steps.0", stack(steps, 1));
                keep = arange(patches.shape[0] * patches.shape[1], dtype: ScalarType.Int64, device: patches.device);
            }
            for (int k = 0; k < outputs.Length; k++) Compare($"{prefix}out.{k}", outputs[k]);

            // The next level's inputs: the rows the reference kept, flattened in row-major order.
            conds = outputs.Select((o, k) => (expected.GetValueOrDefault($"{prefix}out.{k}") ?? o))
                .Select(o => o.reshape(-1, o.shape[2]).index_select(0, keep)).ToArray();
            images = patches.reshape(-1, patches.shape[2]).index_select(0, keep).reshape(-1, 3, gen.PatchSize, gen.PatchSize);
        }

        var target = images.reshape(-1, 3);
        Compare("pixelhead.target", target);
        target = expected.GetValueOrDefault("pixelhead.target") ?? target;
        Compare("pixelhead.cond", conds[0]);
        var pixelCond = expected.GetValueOrDefault("pixelhead.cond") ?? conds[0];
        var ids = Pixels.ToByteIds(target);
        Compare("pixelhead.target_ids", ids);
        Compare("pixelhead.logits", model.PixelHead.Logits(ids, pixelCond));
        Compare("pixelhead.loss_eval", model.PixelHead.Loss(target, [pixelCond]).reshape(1));

        if (expected.ContainsKey("model.eval_loss"))
        {
            Compare("model.eval_loss", model.Loss(Pixels.Normalize(Want("input.images_u8")), labels).reshape(1));
        }

        if (expected.ContainsKey("cfg.cond_logits"))
        {
            Input("cfg.cond_logits");
            Input("cfg.uncond_logits");
            foreach (var name in expected.Keys.Where(k => k.StartsWith("cfg.guided.", StringComparison.Ordinal)))
            {
                var (cfg, threshold) = ParseGuidedName(name);
                Compare(name, Guidance.Mix(Want("cfg.cond_logits"), Want("cfg.uncond_logits"), cfg, threshold));
            }
        }

        // Anything the reference recorded that this run did not reproduce is a failure, not a silent pass.
        return expected.Keys.Select(name => rows.TryGetValue(name, out var row) ? row
            : new ParityRow(name, ShapeOf(expected[name]), double.NaN, double.NaN, "UNCHECKED")).ToList();
    }

    static Tensor OnDevice(Tensor t, Device? device)
    {
        if (device is null || device.type == DeviceType.CPU) return t;
        var moved = t.to(device).DetachFromDisposeScope();
        t.Dispose();
        return moved;
    }

    /// <summary><c>cfg.guided.G.T</c> with G and T written as Python prints floats, e.g. <c>cfg.guided.1.5.0.0001</c>.</summary>
    static (double Cfg, double Threshold) ParseGuidedName(string name)
    {
        var parts = name["cfg.guided.".Length..].Split('.');
        if (parts.Length < 3) throw new InvalidDataException($"cannot read guidance scale and threshold from '{name}'");
        double cfg = double.Parse(parts[0] + "." + parts[1], CultureInfo.InvariantCulture);
        double threshold = double.Parse(string.Join(".", parts[2..]), CultureInfo.InvariantCulture);
        return (cfg, threshold);
    }

    static ParityRow Measure(string name, Tensor actual, Tensor want)
    {
        string shape = ShapeOf(want);
        if (!actual.shape.SequenceEqual(want.shape))
            return new ParityRow(name, $"{shape} (got {ShapeOf(actual)})", double.PositiveInfinity, double.PositiveInfinity, "FAIL");
        if (!want.is_floating_point())
        {
            long differing = actual.to_type(ScalarType.Int64).ne(want.to_type(ScalarType.Int64)).sum().item<long>();
            return new ParityRow(name, shape, differing, differing, differing == 0 ? "PASS" : "FAIL");
        }
        var a = actual.to_type(ScalarType.Float64);
        var w = want.to_type(ScalarType.Float64);
        double maxAbs = (a - w).abs().max().item<double>();
        double scale = w.abs().max().item<double>();
        double maxRel = scale > 0 ? maxAbs / scale : maxAbs;
        bool pass = maxAbs <= Tolerance || maxRel <= Tolerance;
        return new ParityRow(name, shape, maxAbs, maxRel, pass ? "PASS" : "FAIL");
    }

    static string ShapeOf(Tensor t) => string.Join("x", t.shape);

    /// <summary>The table the command line prints.</summary>
    public static string Format(IEnumerable<ParityRow> rows)
    {
        var list = rows.ToList();
        int w = Math.Max(30, list.Max(r => r.Name.Length) + 2);
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"{"tensor".PadRight(w)}{"shape",-16}{"max abs err",14}{"max rel err",14}  result");
        foreach (var r in list)
        {
            string abs = r.Status == "INPUT" ? "-" : r.MaxAbs.ToString("0.000e+00", CultureInfo.InvariantCulture);
            string rel = r.Status == "INPUT" ? "-" : r.MaxRel.ToString("0.000e+00", CultureInfo.InvariantCulture);
            sb.AppendLine($"{r.Name.PadRight(w)}{r.Shape,-16}{abs,14}{rel,14}  {r.Status}");
        }
        return sb.ToString();
    }
}
