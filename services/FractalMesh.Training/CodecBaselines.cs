using ImageMagick;

namespace FractalMesh.Training;

/// <summary>
/// Lossless codecs at the strongest settings their library offers, the baselines <c>eval-nll</c> sets beside the model.
/// Both go through Magick.NET (ImageMagick with libwebp, libpng and zlib built in), not an external program.
/// SkiaSharp is not used here: Skia's WebP encoder fixes libwebp's method at 0 for lossless output (the fastest, about
/// 0.4 bits/dim worse on 32×32 emoji than method 6), and its PNG encoder writes only 8-bit RGB(A), never a palette.
/// </summary>
public static class CodecBaselines
{
    /// <summary>libwebp's lossless method (effort, 0–6): 6 is the most. With quality 100 this is <c>cwebp -lossless -z 9</c>.</summary>
    public const int WebpMethod = 6;

    /// <summary>libwebp's lossless quality: in lossless mode it is effort spent on the entropy coding; 100 is the most.</summary>
    public const int WebpQuality = 100;

    /// <summary>zlib compression level of every PNG trial: 9, the most.</summary>
    public const int PngZlibLevel = 9;

    /// <summary>One PNG encoding tried by <see cref="EncodePngSmallest"/>.</summary>
    /// <param name="Truecolor">8-bit RGB always; otherwise ImageMagick's lossless reduction (palette, grey, lower bit depth) where the pixels allow it.</param>
    /// <param name="Strategy">ImageMagick's <c>png:compression-strategy</c>: 0 Huffman only, 1 filtered, 2 RLE, 3 fixed, 4 default (zlib's strategies).</param>
    /// <param name="Filter">ImageMagick's <c>png:compression-filter</c>: 0–4 one PNG filter for every row (none, sub, up, average, Paeth), 5 libpng's adaptive choice per row.</param>
    public readonly record struct PngTrial(bool Truecolor, int Strategy, int Filter);

    /// <summary>
    /// The PNG encodings tried per image: both colour types × the five zlib strategies × the six filter choices, zlib level 9.
    /// (optipng -o7 tries zlib levels 1–9 too; on the emoji test split levels below 9 won back less than 0.001 bits/dim.)
    /// </summary>
    public static IReadOnlyList<PngTrial> PngTrials { get; } =
        [.. from truecolor in new[] { false, true } from strategy in Enumerable.Range(0, 5) from filter in Enumerable.Range(0, 6)
            select new PngTrial(truecolor, strategy, filter)];

    /// <summary>Lossless WebP at libwebp's maximum effort (method 6, quality 100: what <c>cwebp -lossless -z 9</c> sets).</summary>
    public static byte[] EncodeWebpLossless(ReadOnlySpan<byte> planar, int width, int height)
    {
        using var image = Load(planar, width, height);
        image.Format = MagickFormat.WebP;
        image.Quality = WebpQuality; // below 100 ImageMagick also turns on libwebp's near-lossless preprocessing
        image.Settings.SetDefine(MagickFormat.WebP, "lossless", "true");
        image.Settings.SetDefine(MagickFormat.WebP, "method", WebpMethod.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return image.ToByteArray();
    }

    /// <summary>The smallest of the <see cref="PngTrials"/> PNG encodings of the image, each with no ancillary chunks.</summary>
    public static byte[] EncodePngSmallest(ReadOnlySpan<byte> planar, int width, int height)
    {
        byte[]? best = null;
        foreach (var trial in PngTrials)
        {
            var png = EncodePng(planar, width, height, trial);
            if (best is null || png.Length < best.Length) best = png;
        }
        return best!;
    }

    /// <summary>One PNG encoding of the image (zlib level 9, no ancillary chunks: no gAMA, sRGB, time or text).</summary>
    public static byte[] EncodePng(ReadOnlySpan<byte> planar, int width, int height, PngTrial trial)
    {
        if (trial.Strategy is < 0 or > 4) throw new ArgumentOutOfRangeException(nameof(trial), $"strategy {trial.Strategy} is not in 0..4");
        if (trial.Filter is < 0 or > 5) throw new ArgumentOutOfRangeException(nameof(trial), $"filter {trial.Filter} is not in 0..5");
        using var image = Load(planar, width, height);
        image.Format = MagickFormat.Png;
        // ImageMagick's own define names: Magick.NET's PngWriteDefines has no value for the adaptive filter (5).
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        image.Settings.SetDefine(MagickFormat.Png, "compression-level", PngZlibLevel.ToString(inv));
        image.Settings.SetDefine(MagickFormat.Png, "compression-strategy", trial.Strategy.ToString(inv));
        image.Settings.SetDefine(MagickFormat.Png, "compression-filter", trial.Filter.ToString(inv));
        image.Settings.SetDefine(MagickFormat.Png, "exclude-chunk", "all");
        if (trial.Truecolor) image.Settings.SetDefine(MagickFormat.Png, "color-type", "2");
        return image.ToByteArray();
    }

    /// <summary>Planar RGB bytes (3×H×W) as an opaque ImageMagick image with no metadata.</summary>
    static MagickImage Load(ReadOnlySpan<byte> planar, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        int plane = width * height;
        if (planar.Length != 3 * plane) throw new ArgumentException($"expected {3 * plane} bytes for {width}×{height} RGB, got {planar.Length}");
        var rgb = new byte[3 * plane];
        for (int i = 0; i < plane; i++)
        {
            rgb[3 * i] = planar[i];
            rgb[3 * i + 1] = planar[plane + i];
            rgb[3 * i + 2] = planar[2 * plane + i];
        }
        var image = new MagickImage(rgb, new PixelReadSettings((uint)width, (uint)height, StorageType.Char, PixelMapping.RGB));
        image.Strip();
        return image;
    }
}
