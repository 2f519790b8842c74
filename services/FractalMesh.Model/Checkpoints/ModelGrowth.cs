using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Checkpoints;

/// <summary>
/// Makes a trained model deeper without changing what it computes, so training goes on from where it stands: the new
/// transformer blocks of a level come after its existing ones, and each new block's two residual branches end in a
/// projection whose weights are zero (<see cref="ZeroedBranchEnds"/>). A pre-norm block whose branches add
/// zero is the identity, so the deeper model's outputs, losses and samples equal the source's; the zeroed projections
/// get gradients at the first step and the blocks start to learn. The new blocks' other weights are drawn as a new
/// model's are (the global random generator).
/// </summary>
public static class ModelGrowth
{
    /// <summary>
    /// The last projections of a block's residual branches: attention's output and the feed-forward's second layer, in
    /// the ViT-style blocks of MAR levels and pixel heads, and in the LlamaGen-style blocks of AR levels.
    /// </summary>
    public static IReadOnlyList<string> ZeroedBranchEnds { get; } =
        ["attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias", "attention.wo.weight", "feed_forward.w2.weight"];

    /// <summary>
    /// A copy of <paramref name="source"/> (a whole model, level 0 down) whose level <paramref name="level"/> has
    /// <paramref name="blocks"/> transformer blocks. <paramref name="level"/> counts as <see cref="FractalConfig.Blocks"/>
    /// does: the last entry is the pixel head. Throws <see cref="ArgumentException"/> naming the argument when the level
    /// does not exist or <paramref name="blocks"/> is fewer than the level has.
    /// </summary>
    public static FractalModel Deepen(FractalModel source, int level, int blocks)
    {
        if (source.Level != 0) throw new ArgumentException("the source must be a whole model (level 0 down)", nameof(source));
        var config = source.Config;
        if (level < 0 || level >= config.Blocks.Length)
            throw new ArgumentOutOfRangeException(nameof(level), level, $"the model has levels 0 to {config.Blocks.Length - 1} (the last is the pixel head)");
        if (blocks < config.Blocks[level])
            throw new ArgumentOutOfRangeException(nameof(blocks), blocks, $"level {level} already has {config.Blocks[level]} blocks; growing cannot remove any");

        var grownBlocks = (int[])config.Blocks.Clone();
        grownBlocks[level] = blocks;
        var grown = new FractalModel(config with { Blocks = grownBlocks });
        try
        {
            CopyInto(grown, source.state_dict(), BlocksPrefix(config, level), config.Blocks[level]);
            return grown;
        }
        catch
        {
            grown.Dispose();
            throw;
        }
    }

    /// <summary>The state-dict prefix of level <paramref name="level"/>'s blocks (<c>generator.blocks.</c>, or the pixel head's <c>blocks.</c>).</summary>
    public static string BlocksPrefix(FractalConfig config, int level) =>
        level == config.Levels ? FractalModel.KeyPrefix(level) + "blocks." : FractalModel.KeyPrefix(level) + "generator.blocks.";

    static void CopyInto(FractalModel grown, IReadOnlyDictionary<string, Tensor> given, string prefix, int existingBlocks)
    {
        using var _ = no_grad();
        foreach (var (name, target) in grown.state_dict())
        {
            if (given.TryGetValue(name, out var weight))
            {
                target.copy_(weight);
                continue;
            }
            // Only the new blocks are absent from the source: blocks.{existingBlocks} onwards of the grown level.
            if (!name.StartsWith(prefix, StringComparison.Ordinal) || !int.TryParse(name[prefix.Length..].Split('.')[0], out int block) || block < existingBlocks)
                throw new InvalidOperationException($"the grown model has a weight the source lacks outside the new blocks: {name}");
            if (ZeroedBranchEnds.Any(end => name.EndsWith("." + end, StringComparison.Ordinal))) target.zero_();
        }
    }
}
