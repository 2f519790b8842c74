using FractalMesh.Model.Config;

namespace FractalMesh.Rpc;

/// <summary>
/// What a level expects of the rows sent to it: the side of the patches it completes, the width and number of the
/// conditions it reads, and how many <c>num_iter</c> entries it needs (its own and every level's below it).
/// </summary>
/// <param name="Level">0 for the coarsest level; the model's level count for the pixel head.</param>
/// <param name="PatchSize">Side of each row's patch in pixels (1 for the pixel head).</param>
/// <param name="CondWidth">Width of each condition vector: the width of the level above (level 0: its class embedding).</param>
/// <param name="MinConds">Fewest condition vectors a row may carry.</param>
/// <param name="MaxConds">Most condition vectors a row may carry.</param>
/// <param name="NumIterCount">Fewest <c>num_iter</c> entries a request needs.</param>
public sealed record LevelShape(int Level, int PatchSize, int CondWidth, int MinConds, int MaxConds, int NumIterCount)
{
    /// <summary>
    /// The shape of <paramref name="level"/> in a model of <paramref name="config"/>: levels below 0 get exactly as many
    /// conditions as the generator above hands down (a MAR level hands what the level below reads: a MAR level its
    /// <c>num_conds</c>, an AR level or the pixel head one; an AR level hands one), level 0 gets its class embedding
    /// repeated (between what its generator reads and five).
    /// </summary>
    public static LevelShape Of(FractalConfig config, int level)
    {
        if (level < 0 || level > config.Levels)
            throw new ArgumentOutOfRangeException(nameof(level), $"level {level} is outside 0..{config.Levels} (the last is the pixel head)");
        int numIter = config.Levels - level;
        if (level == 0)
        {
            int reads = config.Generators[0] == GeneratorKind.Mar ? config.NumConds : 1;
            return new LevelShape(0, config.ImageSizes[0], config.Widths[0], reads, 5, numIter);
        }
        int handed = config.Generators[level - 1] == GeneratorKind.Mar ? config.ConditionsRead(level) : 1;
        return new LevelShape(level, config.ImageSizes[level], config.Widths[level - 1], handed, handed, numIter);
    }
}
