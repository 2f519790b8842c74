using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// AR sampling (paper §3.3): one patch per step in raster order through the KV cache. Known patches are copied, not
/// sampled (they still enter the cache so later patches see them); partly known ones are generated with their known pixels.
/// Each call keeps its own KV cache, so calls do not share this level's forward passes (rows at different positions would
/// need a cache with per-row lengths); the levels below still batch across calls.
/// </summary>
public sealed class ArLevelSampler(ArGenerator generator, int level, IPatchSampler next)
    : LevelSampler(level, generator.SeqLen, generator.PatchSize, next)
{
    public override async Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
    {
        int rows = request.Rows, S = SeqLen, full = PatchSize * PatchSize;
        var canvas = NewCanvas(request);
        var device = request.Conds[0].device;
        if (request.StartStep == 0 && Enumerable.Range(0, rows).All(r => Enumerable.Range(0, S).All(j => canvas.KnownInPatch(r, j) == full))) return canvas.Bytes;

        var cond = BothHalves(request, 1)[0];
        using var cache = generator.NewCache();
        try
        {
            for (int t = 0; t < S; t++)
            {
                cancel.ThrowIfCancellationRequested();
                // Before a resumption point the patch is in the partial image: only the KV cache is rebuilt.
                var pairs = t < request.StartStep ? []
                    : Enumerable.Range(0, rows).Where(r => canvas.KnownInPatch(r, t) < full).Select(r => (r, t)).ToList();
                var rowCfg = request.Cfg.Select(c => request.LinearCfg ? (float)MarSchedule.LinearCfgAr(c, S, t) : c).ToArray();
                var rowTemperature = request.Temperature.Select(x => request.LinearTemperature ? (float)MarSchedule.LinearCfgAr(x, S, t) : x).ToArray();
                Tensor output;
                using (no_grad())
                using (var scope = NewDisposeScope())
                {
                    Tensor? previous = null;
                    if (t > 0)
                    {
                        previous = canvas.Patches(device).select(1, t - 1);               // (R, 3p²)
                        if (request.Guided) previous = cat([previous, previous], 0);
                    }
                    output = generator.Step(previous, cond, t, cache).MoveToOuterDisposeScope(); // (R or 2R, C)
                }
                // Children are listed by (row, patch) as row·S + patch; the step's output has one row per row.
                using (output)
                    await SampleChildrenAsync(request, canvas, pairs,
                        index => [output.index_select(0, tensor(index.Select(i => i / S).ToArray(), device: device))], rowCfg, rowTemperature, cancel);
                if (t >= request.StartStep && request.OnStep is { } onStep)
                    await onStep(new LevelStep(t, S, (byte[])canvas.Bytes.Clone(), (bool[])canvas.Done.Clone()));
            }
            return canvas.Bytes;
        }
        finally
        {
            if (request.Guided) cond.Dispose();
        }
    }
}
