using FractalMesh.Data;
using FractalMesh.Model;
using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Training;

/// <summary>A mean in bits per dimension with a 95% confidence half-width.</summary>
public readonly record struct BitsPerDim(double Mean, double HalfWidth95, int Samples);

/// <summary>Held-out likelihood and lossless codecs on the same images.</summary>
/// <param name="Model">The model's bits/dim; null when only the codecs were measured (<see cref="LikelihoodEvaluator.EvaluateCodecs"/>).</param>
/// <param name="Png">PNG at maximum compression, each image alone (<see cref="CodecBaselines.EncodePngSmallest"/>).</param>
/// <param name="WebpLossless">Lossless WebP at libwebp's maximum effort, each image alone (<see cref="CodecBaselines.EncodeWebpLossless"/>).</param>
/// <param name="Images">How many test images were measured.</param>
/// <param name="Passes">Forward passes per batch for the model; 0 when only the codecs were measured.</param>
public sealed record LikelihoodReport(BitsPerDim? Model, BitsPerDim Png, BitsPerDim WebpLossless, int Images, int Passes);

/// <summary>
/// The official likelihood protocol (engine_fractalgen.compute_nll): evaluation mode, unconditional (null embedding),
/// channels weighted equally, MAR levels masking a uniformly random number of patches, several passes averaged; nats → bits.
/// </summary>
public static class LikelihoodEvaluator
{
    /// <summary>Bits per dimension of one batch, averaged over <paramref name="passes"/> forward passes.</summary>
    public static double BatchBitsPerDim(FractalModel model, Tensor normalizedImages, Tensor labels, int passes)
    {
        model.eval();
        using var _ = no_grad();
        double total = 0;
        for (int p = 0; p < passes; p++)
        {
            using var loss = model.Loss(normalizedImages, labels);
            total += loss.item<float>();
        }
        return total / passes / Math.Log(2);
    }

    public static LikelihoodReport Evaluate(FractalModel model, ImageDataset data, int passes, int batchSize, int? limit, long seed, Action<int, int>? progress = null)
    {
        manual_seed(seed);
        var device = model.parameters().First().device;
        int n = Math.Min(data.Count, limit ?? data.Count);
        var batchValues = new List<(double Bpd, int Count)>();
        for (int start = 0; start < n; start += batchSize)
        {
            int b = Math.Min(batchSize, n - start);
            using var scope = NewDisposeScope();
            var u8 = tensor(data.Pixels.AsSpan(start * data.ImageByteCount, b * data.ImageByteCount).ToArray(), dtype: ScalarType.Byte, device: device)
                .reshape(b, 3, data.Height, data.Width);
            var labels = tensor(data.Labels.AsSpan(start, b).ToArray().Select(l => (long)l).ToArray(), device: device);
            batchValues.Add((BatchBitsPerDim(model, Pixels.Normalize(u8), labels, passes), b));
            progress?.Invoke(start + b, n);
        }
        var (png, webp) = Codecs(data, n);
        return new LikelihoodReport(Weighted(batchValues), png, webp, n, passes);
    }

    /// <summary>The codec baselines alone (no model): bits/dim of each image encoded by itself, first <paramref name="limit"/> images.</summary>
    public static LikelihoodReport EvaluateCodecs(ImageDataset data, int? limit, Action<int, int>? progress = null)
    {
        int n = Math.Min(data.Count, limit ?? data.Count);
        var (png, webp) = Codecs(data, n, progress);
        return new LikelihoodReport(null, png, webp, n, 0);
    }

    static (BitsPerDim Png, BitsPerDim Webp) Codecs(ImageDataset data, int n, Action<int, int>? progress = null)
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
        return (Summary(png), Summary(webp));
    }

    /// <summary>Mean and 95% interval over per-batch values (the model's loss is a batch mean), weighted by batch size.</summary>
    static BitsPerDim Weighted(List<(double Bpd, int Count)> values)
    {
        double total = values.Sum(v => v.Count);
        double mean = values.Sum(v => v.Bpd * v.Count) / total;
        if (values.Count < 2) return new BitsPerDim(mean, double.NaN, values.Count);
        double var = values.Sum(v => v.Count * (v.Bpd - mean) * (v.Bpd - mean)) / total * values.Count / (values.Count - 1);
        return new BitsPerDim(mean, 1.96 * Math.Sqrt(var / values.Count), values.Count);
    }

    static BitsPerDim Summary(double[] values)
    {
        double mean = values.Average();
        double var = values.Length > 1 ? values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1) : double.NaN;
        return new BitsPerDim(mean, 1.96 * Math.Sqrt(var / values.Length), values.Length);
    }
}
