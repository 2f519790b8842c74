using FractalMesh.Model.Modules;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>
/// Per-image losses (what eval-nll's interval over images needs) are the likelihood pass split by image: under the same
/// random state their mean is the batch loss, each depends only on its own image, and training mode refuses them.
/// </summary>
[Collection("TorchStatistics")]
public class ItemLossesUnitTests
{
    public static TheoryData<string> Configs => TensorLifetimeUnitTests.Configs;

    /// <summary>A tiny model of <paramref name="kind"/> with weights drawn from <paramref name="seed"/>, in evaluation mode.</summary>
    static FractalModel EvalModel(string kind, long seed)
    {
        manual_seed(seed);
        var model = new FractalModel(TensorLifetimeUnitTests.Tiny(kind));
        model.eval();
        return model;
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void TheirMeanIsTheBatchLossUnderTheSameRandomState(string kind)
    {
        using var model = EvalModel(kind, 5);
        using var _ = no_grad();
        using var images = rand(5, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1, 0 });
        for (long seed = 0; seed < 4; seed++)   // several masking draws (MAR levels mask a random number of patches)
        {
            manual_seed(seed);
            using var loss = model.Loss(images, labels);
            manual_seed(seed);
            using var items = model.ItemLosses(images, labels);
            Assert.Equal([5L], items.shape);
            var values = items.data<float>().ToArray();
            float batch = loss.item<float>(), mean = values.Average();
            Assert.True(Math.Abs(batch - mean) <= 1e-6 * batch, $"seed {seed}: batch loss {batch}, mean of the images' {mean}");
            Assert.True(values.Min() > 0);
        }
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void EachImagesLossDependsOnlyOnThatImage(string kind)
    {
        using var model = EvalModel(kind, 6);
        using var _ = no_grad();
        using var images = rand(4, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1 });
        using var changed = images.clone();
        using (var third = changed[2]) using (var other = rand(3, 8, 8).mul(2).sub(1)) third.copy_(other);   // another third image; the others stay
        manual_seed(9);
        using var before = model.ItemLosses(images, labels);
        manual_seed(9);
        using var after = model.ItemLosses(changed, labels);
        var a = before.data<float>().ToArray();
        var b = after.data<float>().ToArray();
        foreach (int i in new[] { 0, 1, 3 }) Assert.Equal(a[i], b[i], 5);
        Assert.NotEqual(a[2], b[2]);
    }

    [Fact]
    public void TrainingModeRefusesThem()
    {
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny("mar"));
        model.train();
        using var images = rand(2, 3, 8, 8);
        using var labels = tensor(new long[] { 0, 1 });
        var e = Assert.Throws<InvalidOperationException>(() => model.ItemLosses(images, labels).Dispose());
        Assert.Contains("eval()", e.Message);
    }
}
