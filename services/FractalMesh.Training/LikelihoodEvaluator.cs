using FractalMesh.Data;
using FractalMesh.Model;
using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Training;

/// <summary>A mean in bits per dimension with a 95% confidence half-width over <paramref name="Samples"/> images.</summary>
public readonly record struct BitsPerDim(double Mean, double HalfWidth95, int Samples);

/// <summary>Held-out likelihood and lossless codecs on the same images.</summary>
/// <param name="Model">The model's bits/dim; null when only the codecs were measured (<see cref="LikelihoodEvaluator.EvaluateCodecs"/>).</param>
/// <param name="Png">PNG at maximum compression, each image alone (<see cref="CodecBaselines.EncodePngSmallest"/>).</param>
/// <param name="WebpLossless">Lossless WebP at libwebp's maximum effort, each image alone (<see cref="CodecBaselines.EncodeWebpLossless"/>).</param>
/// <param name="Images">How many test images were measured.</param>
/// <param name="Passes">Forward passes per batch for the model; 0 when only the codecs were measured.</param>
/// <param name="ModelMinusWebp">The model's bits/dim minus WebP's, image by image (a paired interval); null without a model.</param>
/// <param name="PerClass">The same measures over each label's images alone, in label order (null when not measured).</param>
public sealed record LikelihoodReport(BitsPerDim? Model, BitsPerDim Png, BitsPerDim WebpLossless, int Images, int Passes,
    BitsPerDim? ModelMinusWebp = null, IReadOnlyList<ClassLikelihood>? PerClass = null);

/// <summary>One label's images: the model's bits/dim (null when only the codecs were measured), WebP's, and the paired difference.</summary>
public sealed record ClassLikelihood(int Label, BitsPerDim? Model, BitsPerDim WebpLossless, BitsPerDim? ModelMinusWebp);

/// <summary>
/// The official likelihood protocol (engine_fractalgen.compute_nll): evaluation mode, unconditional (null embedding),
/// channels weighted equally, MAR levels masking a uniformly random number of patches, several passes averaged; nats → bits.
/// </summary>
public static class LikelihoodEvaluator
{
    /// <summary>Bits per dimension of each image of one batch, each averaged over <paramref name="passes"/> forward passes.</summary>
    public static double[] ImageBitsPerDim(FractalModel model, Tensor normalizedImages, Tensor labels, int passes)
    {
        model.eval();
        using var _ = no_grad();
        var total = new double[normalizedImages.shape[0]];
        for (int p = 0; p < passes; p++)
        {
            using var items = model.ItemLosses(normalizedImages, labels);
            using var cpu = items.cpu();
            var values = cpu.data<float>().ToArray();
            for (int i = 0; i < total.Length; i++) total[i] += values[i];
        }
        return total.Select(t => t / passes / Math.Log(2)).ToArray();
    }

    /// <summary>
    /// The model's bits/dim per image (each pass draws one random number of masked patches per MAR level for its whole
    /// batch, as the official protocol does), the codecs' on the same images, and intervals over images. The test split is stored
    /// sorted by category and name, so neighbouring images (a run of skin-tone variants, say) are alike: an interval over
    /// batch means would count that likeness as noise, one over images does not.
    /// </summary>
    public static LikelihoodReport Evaluate(FractalModel model, ImageDataset data, int passes, int batchSize, int? limit, long seed, Action<int, int>? progress = null)
    {
        manual_seed(seed);
        var device = model.parameters().First().device;
        int n = Math.Min(data.Count, limit ?? data.Count);
        var bits = new double[n];
        for (int start = 0; start < n; start += batchSize)
        {
            int b = Math.Min(batchSize, n - start);
            using var scope = NewDisposeScope();
            var u8 = tensor(data.Pixels.AsSpan(start * data.ImageByteCount, b * data.ImageByteCount).ToArray(), dtype: ScalarType.Byte, device: device)
                .reshape(b, 3, data.Height, data.Width);
            var labels = tensor(data.Labels.AsSpan(start, b).ToArray().Select(l => (long)l).ToArray(), device: device);
            ImageBitsPerDim(model, Pixels.Normalize(u8), labels, passes).CopyTo(bits, start);
            progress?.Invoke(start + b, n);
        }
        var (png, webp) = Codecs(data, n);
        return new LikelihoodReport(Summary(bits), Summary(png), Summary(webp), n, passes, Summary(bits.Zip(webp, (m, w) => m - w).ToArray()),
            PerClass(data, n, bits, webp));
    }

    /// <summary>The codec baselines alone (no model): bits/dim of each image encoded by itself, first <paramref name="limit"/> images.</summary>
    public static LikelihoodReport EvaluateCodecs(ImageDataset data, int? limit, Action<int, int>? progress = null)
    {
        int n = Math.Min(data.Count, limit ?? data.Count);
        var (png, webp) = Codecs(data, n, progress);
        return new LikelihoodReport(null, Summary(png), Summary(webp), n, 0, PerClass: PerClass(data, n, null, webp));
    }

    /// <summary>Every label among the first <paramref name="n"/> images, with its images' model and WebP summaries.</summary>
    static IReadOnlyList<ClassLikelihood> PerClass(ImageDataset data, int n, double[]? bits, double[] webp) =>
        Enumerable.Range(0, n).GroupBy(i => data.Labels[i]).OrderBy(g => g.Key).Select(g =>
        {
            int[] images = g.ToArray();
            return new ClassLikelihood(g.Key,
                bits is null ? null : Summary(images.Select(i => bits[i]).ToArray()),
                Summary(images.Select(i => webp[i]).ToArray()),
                bits is null ? null : Summary(images.Select(i => bits[i] - webp[i]).ToArray()));
        }).ToArray();

    /// <summary>Bits/dim of each of the first <paramref name="n"/> images encoded alone: PNG, then WebP lossless.</summary>
    static (double[] Png, double[] Webp) Codecs(ImageDataset data, int n, Action<int, int>? progress = null)
    {
        double dims = 3.0 * data.Height * data.Width;
        var png = new double[n];
        var webp = new double[n];
        int done = 0;
        Parallel.For(0, n, i =>
        {
            var image = data.GetImage(i);
            png[i] = 8.0 * CodecBaselines.EncodePngSmallest(image, data.Width, data.Height).Length / dims;
            webp[i] = 8.0 * CodecBaselines.EncodeWebpLossless(image, data.Width, data.Height).Length / dims;
            int d = Interlocked.Increment(ref done);
            if (progress is not null && (d % 64 == 0 || d == n)) lock (png) progress(d, n);
        });
        return (png, webp);
    }

    /// <summary>Mean and 95% interval (normal approximation) over per-image values.</summary>
    static BitsPerDim Summary(double[] values)
    {
        double mean = values.Average();
        double var = values.Length > 1 ? values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1) : double.NaN;
        return new BitsPerDim(mean, 1.96 * Math.Sqrt(var / values.Length), values.Length);
    }
}
