using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>Classifier-free guidance as the official pixel head mixes logits (docs/ARCHITECTURE.md, The model).</summary>
public static class Guidance
{
    /// <summary>
    /// Mixes conditional and unconditional logits (R,V): where the conditional probability of a value is below
    /// <paramref name="filterThreshold"/> the unconditional logit is raised to at least the conditional one shifted to the
    /// unconditional maximum, so guidance cannot promote values the conditional model finds very unlikely; then
    /// <c>u + cfg·(c − u)</c>. <paramref name="cfg"/> and <paramref name="filterThreshold"/> are per row, shape (R,1).
    /// </summary>
    public static Tensor Mix(Tensor cond, Tensor uncond, Tensor cfg, Tensor filterThreshold)
    {
        using var scope = NewDisposeScope();
        var lowProb = softmax(cond, -1) < filterThreshold;
        // add with a long-lived alpha (Modules/Scalars.cs): a temporary one could be finalized during the native call.
        var shifted = cond.sub(cond.max(-1, keepdim: true).values).add(uncond.max(-1, keepdim: true).values, Scalars.One);
        var raised = where(lowProb, maximum(uncond, shifted), uncond);
        return raised.add(cfg * cond.sub(raised), Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Mix(Tensor, Tensor, Tensor, Tensor)"/> with one scale and threshold for every row.</summary>
    public static Tensor Mix(Tensor cond, Tensor uncond, double cfg, double filterThreshold)
    {
        using var scope = NewDisposeScope();
        var rows = cond.shape[0];
        return Mix(cond, uncond, full(rows, 1, cfg, device: cond.device), full(rows, 1, filterThreshold, device: cond.device))
            .MoveToOuterDisposeScope();
    }
}
