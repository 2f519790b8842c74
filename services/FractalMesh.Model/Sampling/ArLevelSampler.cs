using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// AR sampling (paper §3.3): one patch per step in raster order through the KV cache. Known patches are copied, not
/// sampled (they still enter the cache so later patches see them); partly known ones are generated with their known pixels.
/// </summary>
public sealed class ArLevelSampler(ArGenerator generator, int level, IPatchSampler next)
    : LevelSampler(level, generator.SeqLen, generator.PatchSize, next)
{
    public override byte[] Sample(PatchRequest request, CancellationToken cancel = default)
    {
        using var _ = no_grad();
        int rows = request.Rows, S = SeqLen, full = PatchSize * PatchSize;
        var canvas = NewCanvas(request);
        var device = request.Conds[0].device;
        if (request.StartStep == 0 && Enumerable.Range(0, rows).All(r => Enumerable.Range(0, S).All(j => canvas.KnownInPatch(r, j) == full))) return canvas.Bytes;

        using var halves = NewDisposeScope();
        var cond = BothHalves(request, 1)[0];
        using var cache = generator.NewCache();
        for (int t = 0; t < S; t++)
        {
            cancel.ThrowIfCancellationRequested();
            // Before a resumption point the patch is in the partial image: only the KV cache is rebuilt.
            var pairs = t < request.StartStep ? []
                : Enumerable.Range(0, rows).Where(r => canvas.KnownInPatch(r, t) < full).Select(r => (r, t)).ToList();
            var rowCfg = request.Cfg.Select(c => request.LinearCfg ? (float)MarSchedule.LinearCfgAr(c, S, t) : c).ToArray();
            using (var scope = NewDisposeScope())
            {
                Tensor? previous = null;
                if (t > 0)
                {
                    previous = canvas.Patches(device).select(1, t - 1);               // (R, 3p²)
                    if (request.Guided) previous = cat([previous, previous], 0);
                }
                var output = generator.Step(previous, cond, t, cache);              // (R or 2R, C)
                // Present the step's output as (rows, S, C) with only column t filled, so children gather by (row, patch).
                var outputs = new[] { zeros(output.shape[0], S, output.shape[1], device: device).index_copy_(1, tensor(new long[] { t }, device: device), output.unsqueeze(1)) };
                SampleChildren(request, canvas, pairs, outputs, rowCfg, cancel);
            }
            if (t >= request.StartStep) OnStep?.Invoke(new LevelStep(t, S, (byte[])canvas.Bytes.Clone(), (bool[])canvas.Done.Clone()));
        }
        return canvas.Bytes;
    }
}
