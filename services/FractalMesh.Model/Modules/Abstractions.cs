using static TorchSharp.torch;

namespace FractalMesh.Model.Modules;

/// <summary>What sits below a generator: the next fractal level or the pixel head.</summary>
public abstract class NextLevel : nn.Module
{
    protected NextLevel(string name) : base(name) { }

    /// <summary>Training/evaluation loss (nats per dimension) of normalized images (N,3,s,s) under their conditions.</summary>
    public abstract Tensor Loss(Tensor images, IReadOnlyList<Tensor> conds);

    /// <summary>
    /// Evaluation only: each image's own loss (N), nats per dimension, computed in the same pass as <see cref="Loss"/> and
    /// with the same randomness; their mean is <see cref="Loss"/>'s value (every image hands the same number of patches
    /// down in evaluation). What a per-image confidence interval needs.
    /// </summary>
    public abstract Tensor ItemLosses(Tensor images, IReadOnlyList<Tensor> conds);
}

/// <summary>Inputs of the next level made by one generator in training: only the patches it was asked to predict.</summary>
/// <param name="Patches">(n,3,p,p) normalized pixels.</param>
/// <param name="Conds">Conditions for those patches, each (n,C).</param>
/// <param name="GuidingPixelLoss">The guiding-pixel head's loss, or a zero scalar.</param>
/// <param name="GuidingPixelItemLosses">In evaluation, the guiding-pixel head's loss of each input image (N); otherwise null.</param>
public sealed record LevelInputs(Tensor Patches, Tensor[] Conds, Tensor GuidingPixelLoss, Tensor? GuidingPixelItemLosses = null);

/// <summary>The transformer of one fractal level (paper §3.2): MAR or AR.</summary>
public abstract class Generator : nn.Module
{
    protected Generator(string name, int seqLen, int patchSize, int width) : base(name)
    {
        SeqLen = seqLen;
        PatchSize = patchSize;
        Width = width;
        Grid = (int)Math.Round(Math.Sqrt(seqLen));
        if (Grid * Grid != seqLen) throw new ArgumentException($"a level needs a square grid of patches, got {seqLen}");
    }

    /// <summary>Patches per image.</summary>
    public int SeqLen { get; }
    /// <summary>Patches per side.</summary>
    public int Grid { get; }
    /// <summary>Side of one patch in pixels.</summary>
    public int PatchSize { get; }
    /// <summary>Width of the conditions this level hands down.</summary>
    public int Width { get; }

    /// <summary>How many condition vectors this level hands to each patch of the next one.</summary>
    public abstract int OutputConds { get; }

    /// <summary>Training or evaluation pass: draws the level's own randomness (orders, masks) and returns the next level's inputs.</summary>
    public abstract LevelInputs Forward(Tensor images, IReadOnlyList<Tensor> conds);
}
