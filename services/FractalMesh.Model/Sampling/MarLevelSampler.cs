using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// MAR sampling (paper §3.3): start with every unknown patch masked; each step keeps a cosine-scheduled number masked,
/// predicts the rest by handing their conditions to the next level. Known patches start unmasked and stay out of the
/// random order; partly known ones are generated with their known pixels passed down.
/// </summary>
public sealed class MarLevelSampler : LevelSampler
{
    /// <summary>One call's input to a shared forward pass: its patches (n,S,3p²), mask (n,S) and conditions (n,C) each.</summary>
    public sealed record Pass(Tensor Patches, Tensor Mask, Tensor[] Conds);

    readonly MarGenerator generator;
    readonly PixelHeadSampler? guidingPixel;
    readonly int chunkRows;

    public MarLevelSampler(MarGenerator generator, int level, IPatchSampler next, PixelHeadSampler? guidingPixel, SchedulerOptions? scheduling = null)
        : base(level, generator.SeqLen, generator.PatchSize, next)
    {
        this.generator = generator;
        this.guidingPixel = guidingPixel;
        var options = scheduling ?? SchedulerOptions.Default;
        int tokens = generator.SeqLen + generator.NumConds + (guidingPixel is null ? 0 : 1);
        chunkRows = options.ChunkRows switch
        {
            > 0 => options.ChunkRows,
            0 => Math.Max(16, options.ChunkActivations / (tokens * generator.Width)),
            _ => 0,
        };
        Scheduler = new StepScheduler<Pass, Tensor>(RunPasses, encoded => encoded.Dispose(), scheduling);
    }

    /// <summary>The level's forward passes, shared by every call in flight.</summary>
    public StepScheduler<Pass, Tensor> Scheduler { get; }

    /// <summary>One forward pass over the inputs of every waiting call, split back per call (views of the shared output).</summary>
    Tensor[] RunPasses(IReadOnlyList<Pass> passes)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        if (passes.Count == 1) return [Encode(passes[0].Patches, passes[0].Mask, passes[0].Conds).MoveToOuterDisposeScope()];
        var patches = cat(passes.Select(p => p.Patches).ToList(), 0);
        var mask = cat(passes.Select(p => p.Mask).ToList(), 0);
        var conds = Enumerable.Range(0, passes[0].Conds.Length).Select(k => cat(passes.Select(p => p.Conds[k]).ToList(), 0)).ToArray();
        var encoded = Encode(patches, mask, conds);
        var split = new Tensor[passes.Count];
        long at = 0;
        for (int i = 0; i < passes.Count; i++)
        {
            long n = passes[i].Patches.shape[0];
            split[i] = encoded.narrow(0, at, n).MoveToOuterDisposeScope();
            at += n;
        }
        return split;
    }

    /// <summary>The transformer's output (N,S,C), over chunks of <see cref="SchedulerOptions.ChunkRows"/> rows when set.</summary>
    Tensor Encode(Tensor patches, Tensor mask, Tensor[] conds)
    {
        long rows = patches.shape[0];
        if (chunkRows <= 0 || rows <= chunkRows) return generator.Encode(patches, mask, conds);
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (long at = 0; at < rows; at += chunkRows)
        {
            long n = Math.Min(chunkRows, rows - at);
            parts.Add(generator.Encode(patches.narrow(0, at, n), mask.narrow(0, at, n), conds.Select(c => c.narrow(0, at, n)).ToArray()));
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    public override async Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
    {
        int rows = request.Rows, S = SeqLen;
        var canvas = NewCanvas(request);
        var device = request.Conds[0].device;
        // Orders and schedules come from what the request originally knew, so that a resumed call replays them.
        var original = request.OriginalKnownMask is { } om ? new Canvas { Bytes = canvas.Bytes, Done = om, Size = canvas.Size, Patch = PatchSize, Grid = Grid } : canvas;

        // Per row: the unknown patches in the row's own random order, and its schedule.
        var orders = new int[rows][];
        var plans = new IReadOnlyList<MarStep>[rows];
        int iters = 0;
        for (int r = 0; r < rows; r++)
        {
            var stream = request.Streams[r];
            orders[r] = Enumerable.Range(0, S).Where(j => original.KnownInPatch(r, j) < PatchSize * PatchSize)
                .OrderBy(j => stream.Uniform(Level, RowStream.Purpose.Order, j)).ThenBy(j => j).ToArray();
            plans[r] = orders[r].Length == 0 ? [] : MarSchedule.Plan(orders[r].Length, request.NumIter[0]);
            iters = Math.Max(iters, plans[r].Count);
        }
        if (iters == 0) return canvas.Bytes;

        Tensor? guiding = guidingPixel is null ? null : await SampleGuidingPixelAsync(request, cancel);
        var conds = BothHalves(request, generator.NumConds);     // built once: the same for every step
        if (guiding is not null)
        {
            using var scope = NewDisposeScope();
            conds = [.. conds, request.Guided ? cat([guiding, guiding], 0).MoveToOuterDisposeScope() : guiding];
        }
        try
        {
            var masked = new bool[rows * S];
            foreach (var (r, order) in orders.Select((o, r) => (r, o)))
                foreach (var j in order) masked[r * S + j] = true;
            var done = new int[rows];
            for (int r = 0; r < rows; r++)
            {
                // Steps already taken before a resumption: their patches are in the partial image.
                done[r] = plans[r].Take(request.StartStep).Sum(p => p.Predicted);
                foreach (var j in orders[r].Take(done[r])) masked[r * S + j] = false;
            }
            for (int t = request.StartStep; t < iters; t++)
            {
                cancel.ThrowIfCancellationRequested();
                var pairs = new List<(int Row, int Patch)>();
                var rowCfg = new float[rows];
                var rowTemperature = new float[rows];
                for (int r = 0; r < rows; r++)
                {
                    rowCfg[r] = request.Cfg[r];
                    rowTemperature[r] = request.Temperature[r];
                    if (t >= plans[r].Count) continue;
                    var step = plans[r][t];
                    foreach (var j in orders[r].Skip(done[r]).Take(step.Predicted).Order()) pairs.Add((r, j));
                    done[r] += step.Predicted;
                    if (request.LinearCfg) rowCfg[r] = (float)MarSchedule.LinearCfg(request.Cfg[r], orders[r].Length, step.MaskLenAfter);
                    if (request.LinearTemperature) rowTemperature[r] = (float)MarSchedule.LinearCfg(request.Temperature[r], orders[r].Length, step.MaskLenAfter);
                }
                pairs.Sort();
                if (pairs.Count > 0)
                {
                    Pass pass;
                    using (var scope = NewDisposeScope())
                    {
                        var patches = canvas.Patches(device);
                        var mask = tensor(masked, device: device).reshape(rows, S);
                        pass = request.Guided
                            ? new Pass(cat([patches, patches], 0).MoveToOuterDisposeScope(), cat([mask, mask], 0).MoveToOuterDisposeScope(), conds)
                            : new Pass(patches.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), conds);
                    }
                    Tensor encoded;
                    try { encoded = await Scheduler.RunAsync(pass, (int)pass.Patches.shape[0], cancel); }
                    finally { pass.Patches.Dispose(); pass.Mask.Dispose(); }
                    using (encoded)
                        await SampleChildrenAsync(request, canvas, pairs, index => generator.Conditions(encoded, index, generator.OutputConds), rowCfg, rowTemperature, cancel);
                }
                foreach (var (r, j) in pairs) masked[r * S + j] = false;
                if (request.OnStep is { } onStep) await onStep(new LevelStep(t, iters, (byte[])canvas.Bytes.Clone(), (bool[])canvas.Done.Clone()));
            }
            return canvas.Bytes;
        }
        finally
        {
            guiding?.Dispose();
            // Concatenations made here; without guidance they are the caller's own tensors.
            if (request.Guided || guiding is not null) foreach (var c in conds.Skip(request.Guided ? 0 : generator.NumConds)) c.Dispose();
        }
    }

    /// <summary>The mean colour of each row's patch, sampled first by the level's guiding-pixel head, normalized (R,3), outside any scope.</summary>
    async Task<Tensor> SampleGuidingPixelAsync(PatchRequest request, CancellationToken cancel)
    {
        int rows = request.Rows;
        // Not disposed here: it borrows the caller's conditions.
        var child = new PatchRequest
        {
            Conds = request.Conds,
            NullConds = request.NullConds,
            Size = 1,
            KnownPixels = new byte[rows * 3],
            KnownMask = new bool[rows],
            Cfg = request.Cfg,
            Temperature = request.Temperature,
            FilterThreshold = request.FilterThreshold,
            NumIter = request.NumIter,
            Streams = request.Streams.Select(s => s.Child(Level, SeqLen)).ToArray(),
        };
        var bytes = await guidingPixel!.SampleAsync(child, cancel);
        using var scope = NewDisposeScope();
        var u8 = tensor(bytes, device: request.Conds[0].device).reshape(rows, 3, 1, 1);
        return Pixels.Normalize(u8).reshape(rows, 3).MoveToOuterDisposeScope();
    }
}
