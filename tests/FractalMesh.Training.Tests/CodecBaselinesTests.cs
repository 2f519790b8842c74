using FractalMesh.Data;
using FractalMesh.Imaging;
using SkiaSharp;
using Xunit;

namespace FractalMesh.Training.Tests;

/// <summary>
/// eval-nll's codec baselines: each encoder is lossless (Skia, a different decoder, gives back the input) and never
/// larger than SkiaSharp's default-effort encoding of the same image, the baseline eval-nll used before.
/// </summary>
public class CodecBaselinesTests
{
    const int Size = 32;

    /// <summary>Planar 32×32 samples: an emoji-like face (anti-aliased edges, a few hundred colours), flat colours, noise.</summary>
    public static TheoryData<string> Samples => ["face", "flat", "noise"];

    static byte[] Sample(string name) => name switch
    {
        "face" => Face(),
        "flat" => Planar((x, y) => ((x / 8 + y / 8) % 3) switch { 0 => (250, 200, 40), 1 => (60, 60, 60), _ => (255, 255, 255) }),
        "noise" => Noise(),
        _ => throw new ArgumentException(name),
    };

    static byte[] Face()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(Size, Size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var fill = new SKPaint { IsAntialias = true, Color = new SKColor(255, 204, 77) };
            canvas.DrawCircle(16, 16, 14, fill);
            fill.Color = new SKColor(102, 69, 0);
            canvas.DrawOval(11, 12, 2, 3.5f, fill);
            canvas.DrawOval(21, 12, 2, 3.5f, fill);
            using var stroke = new SKPaint { IsAntialias = true, Color = new SKColor(102, 69, 0), Style = SKPaintStyle.Stroke, StrokeWidth = 2 };
            canvas.DrawArc(new SKRect(9, 12, 23, 24), 20, 140, false, stroke);
        }
        return Planar((x, y) => { var c = bitmap.GetPixel(x, y); return (c.Red, c.Green, c.Blue); });
    }

    static byte[] Noise()
    {
        var random = new Random(7);
        var planar = new byte[3 * Size * Size];
        random.NextBytes(planar);
        return planar;
    }

    static byte[] Planar(Func<int, int, (int R, int G, int B)> pixel)
    {
        int plane = Size * Size;
        var planar = new byte[3 * plane];
        for (int y = 0; y < Size; y++)
            for (int x = 0; x < Size; x++)
            {
                var (r, g, b) = pixel(x, y);
                planar[y * Size + x] = (byte)r;
                planar[plane + y * Size + x] = (byte)g;
                planar[2 * plane + y * Size + x] = (byte)b;
            }
        return planar;
    }

    /// <summary>SkiaSharp's default-effort lossless WebP (quality 100; Skia fixes libwebp's method at 0).</summary>
    static byte[] SkiaWebp(byte[] planar)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(Size, Size, SKColorType.Rgba8888, SKAlphaType.Opaque));
        int plane = Size * Size;
        for (int i = 0; i < plane; i++) bitmap.SetPixel(i % Size, i / Size, new SKColor(planar[i], planar[plane + i], planar[2 * plane + i]));
        using var pixmap = bitmap.PeekPixels();
        using var data = pixmap.Encode(new SKWebpEncoderOptions(SKWebpEncoderCompression.Lossless, 100))!;
        return data.ToArray();
    }

    static void AssertDecodesTo(byte[] expected, byte[] encoded, string what)
    {
        var (planar, w, h) = PngImage.Decode(encoded, what);
        Assert.Equal((Size, Size), (w, h));
        Assert.True(expected.AsSpan().SequenceEqual(planar), $"{what} does not decode to its input");
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void WebpAtMaximumEffortIsLosslessAndNoLargerThanSkiasDefault(string sample)
    {
        var image = Sample(sample);
        var webp = CodecBaselines.EncodeWebpLossless(image, Size, Size);
        Assert.Equal("RIFF", System.Text.Encoding.ASCII.GetString(webp, 0, 4));
        Assert.Equal("WEBPVP8L", System.Text.Encoding.ASCII.GetString(webp, 8, 8)); // plain lossless bitstream, no metadata chunks
        AssertDecodesTo(image, webp, $"{sample} WebP");
        Assert.True(webp.Length <= SkiaWebp(image).Length, $"{sample}: {webp.Length} bytes at maximum effort, {SkiaWebp(image).Length} at Skia's default");
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void EveryPngTrialIsLossless(string sample)
    {
        var image = Sample(sample);
        Assert.Equal(60, CodecBaselines.PngTrials.Count);
        foreach (var trial in CodecBaselines.PngTrials)
            AssertDecodesTo(image, CodecBaselines.EncodePng(image, Size, Size, trial), $"{sample} PNG {trial}");
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void PngAtMaximumCompressionIsLosslessTheSmallestTrialAndNoLargerThanSkiasDefault(string sample)
    {
        var image = Sample(sample);
        var png = CodecBaselines.EncodePngSmallest(image, Size, Size);
        AssertDecodesTo(image, png, $"{sample} PNG");
        Assert.Equal(CodecBaselines.PngTrials.Min(t => CodecBaselines.EncodePng(image, Size, Size, t).Length), png.Length);
        int skia = PngImage.Encode(image, Size, Size).Length;
        Assert.True(png.Length <= skia, $"{sample}: {png.Length} bytes at maximum compression, {skia} at Skia's default");
        if (sample != "noise") Assert.True(png.Length < skia, $"{sample}: maximum compression gained nothing over Skia's default ({skia} bytes)");
    }

    [Fact]
    public void PngHasNoAncillaryChunks()
    {
        var png = CodecBaselines.EncodePng(Face(), Size, Size, new CodecBaselines.PngTrial(Truecolor: true, Strategy: 4, Filter: 5));
        var chunks = new List<string>();
        for (int at = 8; at < png.Length; )
        {
            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            chunks.Add(System.Text.Encoding.ASCII.GetString(png, at + 4, 4));
            at += 12 + length;
        }
        Assert.All(chunks, c => Assert.Contains(c, new[] { "IHDR", "PLTE", "tRNS", "IDAT", "IEND" }));
        Assert.Equal(2, png[8 + 8 + 9]); // IHDR colour type 2: truecolour, as the trial asked
    }

    [Fact]
    public void CodecsOnlyReportsBothBaselinesPerImage()
    {
        using var f = new TrainingFixture(images: 5);
        var data = ImageDataset.Load(f.TrainSplit);
        var report = LikelihoodEvaluator.EvaluateCodecs(data, limit: 4);
        Assert.Null(report.Model);
        Assert.Equal(4, report.Images);
        Assert.Equal(4, report.Png.Samples);
        double dims = 3.0 * data.Width * data.Height;
        double webp = Enumerable.Range(0, 4).Average(i => 8.0 * CodecBaselines.EncodeWebpLossless(data.GetImage(i), data.Width, data.Height).Length / dims);
        double png = Enumerable.Range(0, 4).Average(i => 8.0 * CodecBaselines.EncodePngSmallest(data.GetImage(i), data.Width, data.Height).Length / dims);
        Assert.Equal(webp, report.WebpLossless.Mean, 9);
        Assert.Equal(png, report.Png.Mean, 9);
    }
}
