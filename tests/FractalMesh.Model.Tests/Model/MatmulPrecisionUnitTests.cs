using FractalMesh.Model.Modules;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>
/// Mixed precision (<see cref="FractalModel.UseMatmulType"/>, train --bf16): the products run in bfloat16, so the training
/// step's loss and gradients are float32's to bfloat16's precision, the parameters and their gradients stay float32, and
/// turning it off gives the float32 function back bit for bit (that it leaves nothing alive: <see cref="TensorLifetimeUnitTests"/>).
/// </summary>
[Collection("TorchStatistics")]
public class MatmulPrecisionUnitTests
{
    public static TheoryData<string> Configs => TensorLifetimeUnitTests.Configs;

    /// <summary>One training step (<see cref="EagerHeadBackwardUnitTests.Step(FractalModel, Tensor, Tensor)"/>) with products in <paramref name="matmul"/>.</summary>
    static (float Loss, Dictionary<string, float[]> Grads) Step(FractalModel model, Tensor images, Tensor labels, ScalarType? matmul)
    {
        model.UseMatmulType(matmul);
        foreach (var p in model.parameters()) Assert.Equal(ScalarType.Float32, p.dtype);
        var step = EagerHeadBackwardUnitTests.Step(model, images, labels);
        foreach (var (name, p) in model.named_parameters())
            if (p.grad is { } g) Assert.True(g.dtype == ScalarType.Float32, $"{name}'s gradient is {g.dtype}");
        return step;
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void BFloat16ProductsGiveFloat32sLossAndGradientsToTheirPrecision(string kind)
    {
        manual_seed(3);
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny(kind));
        model.train();
        model.UseEagerHeadBackward(7);
        using var images = rand(6, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1, 0, 2 });

        var (exactLoss, exact) = Step(model, images, labels, null);
        var (mixedLoss, mixed) = Step(model, images, labels, ScalarType.BFloat16);
        var (againLoss, again) = Step(model, images, labels, null);

        // bfloat16 keeps 8 significant bits: the loss moves, but by well under a percent.
        Assert.NotEqual(exactLoss, mixedLoss);
        Assert.True(Math.Abs(exactLoss - mixedLoss) <= 1e-2 * exactLoss, $"loss {mixedLoss} with bfloat16 products, {exactLoss} in float32");
        Assert.Equal(exact.Keys.Order(), mixed.Keys.Order());
        foreach (var (name, expected) in exact)
        {
            var actual = mixed[name];
            double dot = 0, ee = 0, aa = 0;
            for (int i = 0; i < expected.Length; i++) { dot += expected[i] * actual[i]; ee += expected[i] * expected[i]; aa += actual[i] * actual[i]; }
            if (ee < 1e-20) continue;                                  // a gradient that is zero in float32 (nothing to compare)
            double cosine = dot / Math.Sqrt(ee * aa), ratio = Math.Sqrt(aa / ee);
            Assert.True(cosine > 0.99 && Math.Abs(ratio - 1) < 0.05, $"{name}: gradient cosine {cosine:F4}, norm ratio {ratio:F4} against float32");
        }

        // Off again: the float32 function, bit for bit.
        Assert.Equal(exactLoss, againLoss);
        foreach (var (name, expected) in exact) Assert.Equal(expected, again[name]);
    }

    [Fact]
    public void OnlyFloatingTypesAreAccepted()
    {
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny("mar"));
        var e = Assert.Throws<ArgumentException>(() => model.UseMatmulType(ScalarType.Int64));
        Assert.Contains("Int64", e.Message);
    }
}
