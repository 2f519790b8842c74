namespace FractalMesh.Model.Config;

/// <summary>The official configurations (paper Table 1, docs/ARCHITECTURE.md, The model) and FractalMesh's small CPU presets.</summary>
public static class Presets
{
    static readonly GeneratorKind Ar = GeneratorKind.Ar, Mar = GeneratorKind.Mar;

    public static readonly IReadOnlyDictionary<string, FractalConfig> All = new Dictionary<string, FractalConfig>
    {
        ["fractalar_in64"] = new() { ImageSizes = [64, 4, 1], Widths = [1024, 512, 128], Blocks = [32, 8, 3], Heads = [16, 8, 4], Generators = [Ar, Ar, Ar], NumConds = 1 },
        ["fractalmar_in64"] = new() { ImageSizes = [64, 4, 1], Widths = [1024, 512, 128], Blocks = [32, 8, 3], Heads = [16, 8, 4], Generators = [Mar, Mar, Ar], NumConds = 5 },
        ["fractalmar_base_in256"] = new() { ImageSizes = [256, 16, 4, 1], Widths = [768, 384, 192, 64], Blocks = [24, 6, 3, 1], Heads = [12, 6, 3, 4], Generators = [Mar, Mar, Mar, Ar], NumConds = 5, GuidingPixel = true },
        ["fractalmar_large_in256"] = new() { ImageSizes = [256, 16, 4, 1], Widths = [1024, 512, 256, 64], Blocks = [32, 8, 4, 1], Heads = [16, 8, 4, 4], Generators = [Mar, Mar, Mar, Ar], NumConds = 5, GuidingPixel = true },
        ["fractalmar_huge_in256"] = new() { ImageSizes = [256, 16, 4, 1], Widths = [1280, 640, 320, 64], Blocks = [40, 10, 5, 1], Heads = [16, 8, 4, 4], Generators = [Mar, Mar, Mar, Ar], NumConds = 5, GuidingPixel = true },
        // 32×32 emoji, 9 classes. Two MAR levels (32→4→1): an 8×8 grid of 4×4 patches, then 16 pixels.
        // Widths 192/96/48 with 4/2/2 blocks is the 2.2M-parameter shape of docs/ARCHITECTURE.md, The model: the official code trains it
        // at ~6 images/s on 2 cores, so an hour of CPU sees ~20k images, several epochs of a 7k-image set.
        ["fractalmar_tiny_in32"] = new() { ImageSizes = [32, 4, 1], Widths = [192, 96, 48], Blocks = [4, 2, 2], Heads = [4, 4, 4], Generators = [Mar, Mar, Ar], NumConds = 5, ClassNum = 9 },
        // The 5.6M-parameter shape of docs/ARCHITECTURE.md, The model (widths 256/128/64, blocks 6/3/2), for longer CPU runs.
        ["fractalmar_small_in32"] = new() { ImageSizes = [32, 4, 1], Widths = [256, 128, 64], Blocks = [6, 3, 2], Heads = [4, 4, 4], Generators = [Mar, Mar, Ar], NumConds = 5, ClassNum = 9 },
    };

    /// <summary>The preset called <paramref name="name"/>, or an error listing the known names.</summary>
    public static FractalConfig Get(string name) =>
        All.TryGetValue(name, out var c) ? c.Validate()
        : throw new ArgumentException($"unknown preset '{name}'; known: {string.Join(", ", All.Keys)}");
}
