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

    /// <summary>The type of every module whose products the switch moves (null where it is off).</summary>
    static List<(string Module, ScalarType? Type)> Switched(FractalModel model)
    {
        var switched = new List<(string, ScalarType?)>();
        foreach (var (name, module) in model.named_modules())
        {
            switch (module)
            {
                case SelfAttention a: switched.Add((name, a.MatmulType)); break;
                case Mlp mlp: switched.Add((name, mlp.MatmulType)); break;
                case CodebookLogits logits: switched.Add((name, logits.MatmulType)); break;
                case RotaryAttention a: switched.Add((name, a.MatmulType)); break;
                case SwiGluFeedForward f: switched.Add((name, f.MatmulType)); break;
            }
        }
        return switched;
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void TheSwitchReachesEveryBlockOfEveryLevelAndEveryPixelHead(string kind)
    {
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny(kind));
        model.UseMatmulType(ScalarType.BFloat16);
        var switched = Switched(model);
        // Attention and feed-forward of every block of every level and pixel head, and each head's three logits.
        int blocks = model.modules().Count(m => m is VitBlock or LlamaBlock);
        int heads = model.modules().Count(m => m is PixelHead);
        Assert.Equal(2 * blocks + 3 * heads, switched.Count);
        Assert.All(switched, m => Assert.True(m.Type == ScalarType.BFloat16, $"{m.Module} multiplies in {m.Type}"));
        model.UseMatmulType(null);
        Assert.All(Switched(model), m => Assert.True(m.Type is null, $"{m.Module} still multiplies in {m.Type}"));
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void EvaluationAndSamplingStayFloat32WithTheSwitchOn(string kind)
    {
        manual_seed(5);
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny(kind));
        using var images = rand(4, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1 });
        var sampler = new FractalMesh.Model.Sampling.FractalSampler(model);
        var requests = Enumerable.Range(0, 3).Select(i => new FractalMesh.Model.Sampling.ImageRequest(i, 40 + i)).ToList();
        var options = new FractalMesh.Model.Sampling.SamplingOptions { Cfg = 2, NumIter = FractalMesh.Model.Sampling.SamplingOptions.DefaultNumIter(model.Config) };
        (float[] Items, byte[] Samples) Run(ScalarType? type)
        {
            model.UseMatmulType(type);
            model.eval();
            manual_seed(9);
            float[] items;
            using (no_grad()) using (var losses = model.ItemLosses(images, labels)) items = losses.data<float>().ToArray();
            return (items, sampler.Generate(requests, options));
        }
        var exact = Run(null);
        var switchedOn = Run(ScalarType.BFloat16);
        Assert.Equal(exact.Items, switchedOn.Items);
        Assert.Equal(exact.Samples, switchedOn.Samples);
    }

    [Fact]
    public void OnlyBFloat16AndFloat32AreAccepted()
    {
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny("mar"));
        var e = Assert.Throws<ArgumentException>(() => model.UseMatmulType(ScalarType.Int64));
        Assert.Contains("Int64", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.UseMatmulType(ScalarType.Float16));   // would need loss scaling
        Assert.Contains("Float16", e.Message);
    }
}
