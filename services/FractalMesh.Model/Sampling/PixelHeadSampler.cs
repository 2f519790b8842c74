using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// Samples one pixel per row with the pixel head (or a level's guiding pixel with its guiding-pixel head): R, then G, then B,
/// each from <c>softmax(guided(temperature · logits))</c> by inverting the CDF at the row's own uniform number. Each of the
/// three steps is a forward pass shared with the other calls in flight (<see cref="Scheduler"/>).
/// </summary>
public sealed class PixelHeadSampler : IPatchSampler
{
    /// <summary>
    /// One call's input to a shared pass: the channel to sample, what its position reads (conditions (n,C) for channel 0,
    /// the byte ids (n) of the channel before otherwise) and the keys and values its earlier positions left.
    /// </summary>
    public sealed record Pass(int Channel, Tensor Input, PixelHeadCache? Cache);

    /// <summary>A call's share of a pass: its logits (n,256) and, before the last channel, the cache for the next step.</summary>
    public sealed record Output(Tensor Logits, PixelHeadCache? Cache) : IDisposable
    {
        public void Dispose()
        {
            Logits.Dispose();
            Cache?.Dispose();
        }
    }

    readonly PixelHead head;
    readonly int level;
    readonly SchedulerOptions options;

    public PixelHeadSampler(PixelHead head, int level, SchedulerOptions? scheduling = null)
    {
        this.head = head;
        this.level = level;
        options = scheduling ?? SchedulerOptions.Default;
        Scheduler = new StepScheduler<Pass, Output>(RunPasses, output => output.Dispose(), scheduling);
    }

    public int PatchSize => 1;

    /// <summary>The head's forward passes, shared by every call in flight.</summary>
    public StepScheduler<Pass, Output> Scheduler { get; }

    /// <summary>
    /// Every waiting call's step: one forward per channel present (each runs one position through the blocks), split back
    /// per call.
    /// </summary>
    Output[] RunPasses(IReadOnlyList<Pass> passes)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var split = new Output[passes.Count];
        foreach (var group in Enumerable.Range(0, passes.Count).GroupBy(i => passes[i].Channel))
        {
            var members = group.ToList();
            int channel = group.Key;
            var input = members.Count == 1 ? passes[members[0]].Input : cat(members.Select(i => passes[i].Input).ToList(), 0);
            var cache = channel == 0 ? null : PixelHeadCache.Concat(members.Select(i => passes[i].Cache!).ToList());
            var (logits, next) = Step(channel, input, cache);
            long at = 0;
            foreach (int i in members)
            {
                long n = passes[i].Input.shape[0];
                split[i] = new Output(logits.narrow(0, at, n).MoveToOuterDisposeScope(), next?.Narrow(at, n).MoveToOuterDisposeScope());
                at += n;
            }
        }
        return split;
    }

    /// <summary>
    /// One channel step over chunks of rows whose activations stay in the caches (see <see cref="SchedulerOptions.ChunkRows"/>);
    /// the last channel's cache is not kept.
    /// </summary>
    (Tensor Logits, PixelHeadCache? Cache) Step(int channel, Tensor input, PixelHeadCache? cache)
    {
        long rows = input.shape[0];
        bool keep = channel < 2;
        long chunk = options.ChunkRows switch
        {
            > 0 => options.ChunkRows,
            0 => Math.Max(16, options.ChunkActivations / (4 * head.Width)),   // the MLP's hidden activations dominate
            _ => rows,
        };
        using var scope = NewDisposeScope();
        if (rows <= chunk)
        {
            var logits = head.StepLogits(channel, input, cache, out var next);
            return (logits.MoveToOuterDisposeScope(), keep ? next.MoveToOuterDisposeScope() : null);
        }
        var parts = new List<Tensor>();
        var caches = new List<PixelHeadCache>();
        for (long at = 0; at < rows; at += chunk)
        {
            long n = Math.Min(chunk, rows - at);
            parts.Add(head.StepLogits(channel, input.narrow(0, at, n), cache?.Narrow(at, n), out var next));
            caches.Add(next);
        }
        return (cat(parts, 0).MoveToOuterDisposeScope(), keep ? PixelHeadCache.Concat(caches).MoveToOuterDisposeScope() : null);
    }

    public async Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
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

        var device = request.Conds[0].device;
        long n = todo.Length;
        Tensor both, cfg, unguided, temperature, threshold;
        using (var scope = NewDisposeScope())
        {
            var index = tensor(todo.Select(r => (long)r).ToArray(), device: device);
            var cond = request.Conds[0].index_select(0, index);
            both = (request.Guided ? cat([cond, request.NullConds![0].index_select(0, index)], 0) : cond).MoveToOuterDisposeScope();
            cfg = tensor(todo.Select(r => request.Cfg[r]).ToArray(), device: device).unsqueeze(1).MoveToOuterDisposeScope();
            unguided = tensor(todo.Select(r => request.Cfg[r] == 1f).ToArray(), device: device).unsqueeze(1).MoveToOuterDisposeScope();
            temperature = tensor(todo.Select(r => request.Temperature[r]).ToArray(), device: device).unsqueeze(1).MoveToOuterDisposeScope();
            threshold = tensor(todo.Select(r => request.FilterThreshold[r]).ToArray(), device: device).unsqueeze(1).MoveToOuterDisposeScope();
        }
        PixelHeadCache? cache = null;
        var input = both;
        try
        {
            var values = new long[both.shape[0]];
            // On a CPU, rows are mixed and drawn in cache-sized groups; elsewhere in one go (each group is a copy to the host).
            long group = device.type == TorchSharp.DeviceType.CPU ? SampleChunkRows : n;
            var probs = new float[Math.Min(n, group) * 256];
            for (int channel = 0; channel < 3; channel++)
            {
                cancel.ThrowIfCancellationRequested();
                Output result;
                try { result = await Scheduler.RunAsync(new Pass(channel, input, cache), (int)both.shape[0], cancel); }
                finally
                {
                    if (!ReferenceEquals(input, both)) input.Dispose();
                    input = both;
                    cache?.Dispose();
                    cache = null;
                }
                cache = result.Cache;
                using (result.Logits)
                {
                    for (long at = 0; at < n; at += group)
                    {
                        int m = (int)Math.Min(group, n - at);
                        Probabilities(result.Logits, request.Guided, n, at, m, temperature, cfg, unguided, threshold, probs);
                        for (int i = 0; i < m; i++)
                        {
                            long row = at + i;
                            int r = todo[row];
                            double u = request.Streams[r].Uniform(level, (RowStream.Purpose)((int)RowStream.Purpose.Red + channel), 0);
                            int value = InverseCdf(probs.AsSpan(i * 256, 256), u);
                            output[r * 3 + channel] = (byte)value;
                            values[row] = value;
                            if (request.Guided) values[n + row] = value;
                        }
                    }
                }
                if (channel < 2)
                    using (var scope = NewDisposeScope()) input = tensor(values, device: device).MoveToOuterDisposeScope();
            }
            return output;
        }
        finally
        {
            if (!ReferenceEquals(input, both)) input.Dispose();
            cache?.Dispose();
            both.Dispose();
            cfg.Dispose();
            unguided.Dispose();
            temperature.Dispose();
            threshold.Dispose();
        }
    }

    /// <summary>
    /// Rows sampled together after a pass on a CPU: guidance, softmax and the draws of this many rows work on a few hundred
    /// kilobytes that stay in the caches, instead of streaming the whole pass's logits through memory once per operation.
    /// </summary>
    const int SampleChunkRows = 512;

    /// <summary>
    /// <c>softmax(guided(temperature · logits))</c> of rows <paramref name="at"/>..+<paramref name="m"/> (of <paramref name="n"/>;
    /// a guided pass holds the unconditional logits of row i at n+i), copied into <paramref name="probs"/>.
    /// </summary>
    static void Probabilities(Tensor logits, bool guided, long n, long at, int m, Tensor temperature, Tensor cfg, Tensor unguided, Tensor threshold, float[] probs)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var t = temperature.narrow(0, at, m);
        Tensor mixed;
        if (guided)
        {
            var c = logits.narrow(0, at, m) * t;
            var u = logits.narrow(0, n + at, m) * t;
            // A row without guidance keeps its conditional logits exactly, as the reference does when cfg == 1.
            mixed = where(unguided.narrow(0, at, m), c, Guidance.Mix(c, u, cfg.narrow(0, at, m), threshold.narrow(0, at, m)));
        }
        else
        {
            mixed = logits.narrow(0, at, m) * t;
        }
        using var values = softmax(mixed, -1).cpu().data<float>();
        values.CopyTo(probs);
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
