namespace FractalMesh.Model.Sampling;

/// <summary>One MAR sampling step: how many patches stay masked after it, how many it predicts, and level 0's guidance scale.</summary>
public readonly record struct MarStep(int Step, int MaskLenAfter, int Predicted);

/// <summary>The MAR cosine masking schedule and linear guidance schedule (paper §3.3, docs/ARCHITECTURE.md, The model).</summary>
public static class MarSchedule
{
    /// <summary>
    /// Patches that stay masked after <paramref name="step"/> of <paramref name="numIter"/>:
    /// <c>max(1, min(masked − 1, floor(S·cos(π/2·(t+1)/T))))</c>. The last step predicts all that remain regardless.
    /// </summary>
    public static int MaskLenAfter(int seqLen, int numIter, int step, int maskedNow)
    {
        double ratio = Math.Cos(Math.PI / 2.0 * (step + 1) / numIter);
        int cosine = (int)Math.Floor(seqLen * ratio);
        return Math.Max(1, Math.Min(maskedNow - 1, cosine));
    }

    /// <summary>
    /// Level 0's linear guidance: <c>1 + (cfg − 1)·(S − maskLen)/S</c> with the clamped mask length of the step. The linear
    /// temperature schedule ramps the temperature from 1 the same way.
    /// </summary>
    public static double LinearCfg(double cfg, int seqLen, int maskLenAfter) => 1 + (cfg - 1) * (seqLen - maskLenAfter) / (double)seqLen;

    /// <summary>AR's linear guidance (and linear temperature) at <paramref name="step"/>: <c>1 + (cfg − 1)·(step + 1)/S</c>.</summary>
    public static double LinearCfgAr(double cfg, int seqLen, int step) => 1 + (cfg - 1) * (step + 1) / (double)seqLen;

    /// <summary>
    /// The whole plan for a level that starts with <paramref name="initiallyMasked"/> of its <paramref name="seqLen"/> patches
    /// masked (all of them when nothing is known). <paramref name="numIter"/> is capped at the sequence length as in the reference.
    /// </summary>
    public static IReadOnlyList<MarStep> Plan(int seqLen, int numIter, int? initiallyMasked = null)
    {
        int masked = initiallyMasked ?? seqLen;
        int iters = Math.Min(seqLen, numIter);
        var steps = new List<MarStep>(iters);
        for (int t = 0; t < iters && masked > 0; t++)
        {
            int after = MaskLenAfter(seqLen, iters, t, masked);
            int predicted = t >= iters - 1 ? masked : Math.Max(0, masked - after);
            steps.Add(new MarStep(t, after, predicted));
            masked -= predicted;
        }
        return steps;
    }
}
