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
    /// <summary>One call's input to a shared pass: the channel to sample, byte ids so far (n,3) and conditions (n,C).</summary>
    public sealed record Pass(int Channel, Tensor Ids, Tensor Cond);

    readonly PixelHead head;
    readonly int level;
    readonly SchedulerOptions options;

    public PixelHeadSampler(PixelHead head, int level, SchedulerOptions? scheduling = null)
    {
        this.head = head;
        this.level = level;
        options = scheduling ?? SchedulerOptions.Default;
        Scheduler = new StepScheduler<Pass, Tensor>(RunPasses, logits => logits.Dispose(), scheduling);
    }

    public int PatchSize => 1;

    /// <summary>The head's forward passes, shared by every call in flight.</summary>
    public StepScheduler<Pass, Tensor> Scheduler { get; }

    /// <summary>
    /// The logits (n,256) of every waiting call's channel: one forward per channel present (the channels see 1, 2 or 3
    /// positions), split back per call.
    /// </summary>
    Tensor[] RunPasses(IReadOnlyList<Pass> passes)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var split = new Tensor[passes.Count];
        foreach (var group in Enumerable.Range(0, passes.Count).GroupBy(i => passes[i].Channel))
        {
            var members = group.ToList();
            if (members.Count == 1)
            {
                var p = passes[members[0]];
                split[members[0]] = Logits(p.Ids, p.Cond, p.Channel).MoveToOuterDisposeScope();
                continue;
            }
            var logits = Logits(cat(members.Select(i => passes[i].Ids).ToList(), 0),
                cat(members.Select(i => passes[i].Cond).ToList(), 0), group.Key);
            long at = 0;
            foreach (int i in members)
            {
                long n = passes[i].Ids.shape[0];
                split[i] = logits.narrow(0, at, n).MoveToOuterDisposeScope();
                at += n;
            }
        }
        return split;
    }

    /// <summary>One channel's logits, over chunks of rows whose activations stay in the caches (see <see cref="SchedulerOptions.ChunkRows"/>).</summary>
    Tensor Logits(Tensor ids, Tensor cond, int channel)
    {
        long rows = ids.shape[0];
        long chunk = options.ChunkRows switch
        {
            > 0 => options.ChunkRows,
            0 => Math.Max(16, options.ChunkActivations / ((channel + 1) * head.Width)),
            _ => rows,
        };
        if (rows <= chunk) return head.ChannelLogits(ids, cond, channel);
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (long at = 0; at < rows; at += chunk)
        {
            long n = Math.Min(chunk, rows - at);
            parts.Add(head.ChannelLogits(ids.narrow(0, at, n), cond.narrow(0, at, n), channel));
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
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
        try
        {
            var ids = new long[both.shape[0] * 3];
            for (int channel = 0; channel < 3; channel++)
            {
                cancel.ThrowIfCancellationRequested();
                Pass pass;
                using (var scope = NewDisposeScope()) pass = new Pass(channel, tensor(ids, device: device).reshape(-1, 3).MoveToOuterDisposeScope(), both);
                Tensor logits;
                try { logits = await Scheduler.RunAsync(pass, (int)both.shape[0], cancel); }
                finally { pass.Ids.Dispose(); }
                float[] probs;
                using (logits)
                using (no_grad())
                using (var step = NewDisposeScope())
                {
                    var channelLogits = logits;                                            // (n or 2n, 256)
                    Tensor mixed;
                    if (request.Guided)
                    {
                        var c = channelLogits.narrow(0, 0, n) * temperature;
                        var u = channelLogits.narrow(0, n, n) * temperature;
                        // A row without guidance keeps its conditional logits exactly, as the reference does when cfg == 1.
                        mixed = where(unguided, c, Guidance.Mix(c, u, cfg, threshold));
                    }
                    else
                    {
                        mixed = channelLogits * temperature;
                    }
                    probs = softmax(mixed, -1).cpu().data<float>().ToArray();
                }
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
        finally
        {
            both.Dispose();
            cfg.Dispose();
            unguided.Dispose();
            temperature.Dispose();
            threshold.Dispose();
        }
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
