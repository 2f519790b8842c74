using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>
/// A grown model (more blocks at one level) computes what its source computes, its new blocks learn, and growing
/// refuses what it cannot do.
/// </summary>
[Collection("TorchStatistics")]
public class ModelGrowthUnitTests
{
    /// <summary>Every tiny kind with every level it has, the pixel head included.</summary>
    public static TheoryData<string, int> Levels => new()
    {
        { "ar", 0 }, { "ar", 1 }, { "ar", 2 }, { "mar", 0 }, { "mar", 1 }, { "mar", 2 },
        { "mar-guiding", 0 }, { "mar-guiding", 1 }, { "mar-guiding", 3 },
    };

    static FractalModel Source(string kind)
    {
        manual_seed(3);
        var model = new FractalModel(TensorLifetimeUnitTests.Tiny(kind));
        // The reference initialises some weights to zero; draw every weight so the copy is checked on non-trivial values.
        using var _ = no_grad();
        foreach (var (_, p) in model.named_parameters()) p.normal_(0, 0.2);
        return model;
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void TheGrownModelsLossesEqualTheSourcesBitForBit(string kind, int level)
    {
        using var source = Source(kind);
        manual_seed(11);
        using var grown = ModelGrowth.Deepen(source, level, source.Config.Blocks[level] + 2);
        Assert.Equal(source.Config.Blocks[level] + 2, grown.Config.Blocks[level]);
        Assert.Equal(source.Config.Blocks.Where((_, l) => l != level), grown.Config.Blocks.Where((_, l) => l != level));
        Assert.True(grown.parameters().Sum(p => p.numel()) > source.parameters().Sum(p => p.numel()));

        source.eval();
        grown.eval();
        using var _ = no_grad();
        using var images = rand(4, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1 });
        for (long seed = 0; seed < 3; seed++)
        {
            manual_seed(seed);
            using var before = source.ItemLosses(images, labels);
            manual_seed(seed);
            using var after = grown.ItemLosses(images, labels);
            var (a, b) = (before.data<float>().ToArray(), after.data<float>().ToArray());
            for (int i = 0; i < a.Length; i++)
                Assert.True(a[i] == b[i], $"seed {seed}, image {i}: source {a[i]}, grown {b[i]}");
        }
    }

    [Theory]
    [InlineData("mar", 0, 4)]   // ViT-style blocks: attn.proj and mlp.fc2, weight and bias
    [InlineData("ar", 1, 2)]    // LlamaGen-style blocks: attention.wo and feed_forward.w2, no biases
    [InlineData("ar", 2, 4)]    // the pixel head
    public void TheNewBlocksStartAtTheIdentityAndGetGradients(string kind, int level, int zeroed)
    {
        using var source = Source(kind);
        using var grown = ModelGrowth.Deepen(source, level, source.Config.Blocks[level] + 1);
        string newBlock = ModelGrowth.BlocksPrefix(grown.Config, level) + source.Config.Blocks[level] + ".";
        var parameters = grown.named_parameters().Where(p => p.name.StartsWith(newBlock, StringComparison.Ordinal)).ToList();
        var ends = parameters.Where(p => ModelGrowth.ZeroedBranchEnds.Any(end => p.name.EndsWith("." + end))).ToList();
        Assert.Equal(zeroed, ends.Count);
        foreach (var (name, p) in ends) Assert.True(p.abs().max().item<float>() == 0, $"{name} is not zero");
        foreach (var (name, p) in parameters.Where(p => p.parameter.dim() == 2 && !ends.Contains(p)))
            Assert.True(p.abs().max().item<float>() > 0, $"{name}: a matrix before the branch's end is zero");   // drawn as a new model's

        grown.train();
        using var images = rand(4, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1 });
        using (var loss = grown.Loss(images, labels)) loss.backward();
        foreach (var (name, p) in ends.Where(e => e.name.EndsWith("weight")))
        {
            using var grad = p.grad!.abs().max();
            Assert.True(grad.item<float>() > 0, $"{name} got no gradient");
        }
    }

    [Fact]
    public void GrowingRefusesAMissingLevelAndFewerBlocks()
    {
        using var source = Source("mar");
        Assert.Equal("level", Assert.Throws<ArgumentOutOfRangeException>(() => ModelGrowth.Deepen(source, 3, 2)).ParamName);
        Assert.Equal("level", Assert.Throws<ArgumentOutOfRangeException>(() => ModelGrowth.Deepen(source, -1, 2)).ParamName);
        Assert.Equal("blocks", Assert.Throws<ArgumentOutOfRangeException>(() => ModelGrowth.Deepen(source, 0, 0)).ParamName);
        using var same = ModelGrowth.Deepen(source, 0, 1);   // as many as it has: a copy
        Assert.Equal(source.Config.Blocks, same.Config.Blocks);
    }
}
