using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// Samples one pixel per row with the pixel head (or a level's guiding pixel with its guiding-pixel head): R, then G, then B,
/// each from <c>softmax(guided(temperature · logits))</c> by inverting the CDF at the row's own uniform number.
/// </summary>
public sealed class PixelHeadSampler(PixelHead head, int level) : IPatchSampler
{
    public int PatchSize => 1;

    public byte[] Sample(PatchRequest request, CancellationToken cancel = default)
    {
        int rows = request.Rows;
        var output = new byte[rows * 3];
        var todo = Enumerable.Range(0, rows).Where(r => !request.KnownMask[r]).ToArray();
        for (int r = 0; r < rows; r++)
        {
            if (!request.KnownMask[r])
                continue;
            for (int c = 0; c < 3; c++) output[r * 3 + c] = request.KnownPixels[r * 3 + c];
        }
        if (todo.Length == 0) return output;

        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var device = request.Conds[0].device;
        var index = tensor(todo.Select(r => (long)r).ToArray(), device: device);
        var cond = request.Conds[0].index_select(0, index);
        var both = request.Guided ? cat([cond, request.NullConds![0].index_select(0, index)], 0) : cond;
        long n = todo.Length;
        var ids = new long[both.shape[0] * 3];
        var cfg = tensor(todo.Select(r => request.Cfg[r]).ToArray(), device: device).unsqueeze(1);
        var temperature = tensor(todo.Select(r => request.Temperature[r]).ToArray(), device: device).unsqueeze(1);
        var threshold = tensor(todo.Select(r => request.FilterThreshold[r]).ToArray(), device: device).unsqueeze(1);
        for (int channel = 0; channel < 3; channel++)
        {
            using var step = NewDisposeScope();
            var logits = head.Logits(tensor(ids, device: device).reshape(-1, 3), both).select(1, channel); // (n or 2n, 256)
            Tensor mixed;
            if (request.Guided)
            {
                var c = logits.narrow(0, 0, n) * temperature;
                var u = logits.narrow(0, n, n) * temperature;
                // A row without guidance keeps its conditional logits exactly, as the reference does when cfg == 1.
                mixed = where(cfg == 1f, c, Guidance.Mix(c, u, cfg, threshold));
            }
            else
            {
                mixed = logits * temperature;
            }
            var probs = softmax(mixed, -1).cpu().data<float>().ToArray();
            for (int i = 0; i < n; i++)
            {
                int r = todo[i];
                double u = request.Streams[r].Uniform(level, (RowStream.Purpose)((int)RowStream.Purpose.Red + channel), 0);
                int value = InverseCdf(probs.AsSpan(i * 256, 256), u);
                output[r * 3 + channel] = (byte)value;
                ids[i * 3 + channel] = value;
                if (request.Guided) ids[(n + i) * 3 + channel] = value;
            }
        }
        return output;
    }

    /// <summary>The smallest value whose cumulative probability exceeds <paramref name="u"/> of the total.</summary>
    public static int InverseCdf(ReadOnlySpan<float> probs, double u)
    {
        double total = 0;
        foreach (var p in probs) total += p;
        double target = u * total, cumulative = 0;
        for (int v = 0; v < probs.Length; v++)
        {
            cumulative += probs[v];
            if (cumulative > target && probs[v] > 0) return v;
        }
        for (int v = probs.Length - 1; v >= 0; v--) if (probs[v] > 0) return v;
        return probs.Length - 1;
    }
}
