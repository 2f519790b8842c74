using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>
/// The pixel heads' eager backward in chunks (the trainer's setting on a CPU) computes the same training step as one
/// backward over the whole batch: the same loss and the same gradient of every parameter, up to float rounding of the
/// chunks' sums (that it leaves no tensor alive: <see cref="TensorLifetimeUnitTests"/>).
/// </summary>
[Collection("TorchStatistics")]
public class EagerHeadBackwardUnitTests
{
    public static TheoryData<string> Configs => TensorLifetimeUnitTests.Configs;

    static FractalConfig Tiny(string kind) => TensorLifetimeUnitTests.Tiny(kind);

    /// <summary>One training step's loss and every parameter's gradient from seed 11 (same label drops, masks, dropout).</summary>
    internal static (float Loss, Dictionary<string, float[]> Grads) Step(FractalModel model, Tensor images, Tensor labels)
    {
        model.zero_grad();
        manual_seed(11);
        using var loss = model.Loss(images, labels);
        loss.backward();
        var grads = model.named_parameters()
            .Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.data<float>().ToArray());
        return (loss.item<float>(), grads);
    }

    static (float Loss, Dictionary<string, float[]> Grads) Step(FractalModel model, Tensor images, Tensor labels, long chunkRows)
    {
        model.UseEagerHeadBackward(chunkRows);
        return Step(model, images, labels);
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void ChunkedHeadsGiveTheSameLossAndGradientsAsOneBackward(string kind)
    {
        manual_seed(3);
        using var model = new FractalModel(Tiny(kind));
        model.train();
        using var images = rand(6, 3, 8, 8).mul(2).sub(1);
        using var labels = tensor(new long[] { 0, 1, 2, 1, 0, 2 });

        var (wholeLoss, whole) = Step(model, images, labels, 0);
        var (chunkedLoss, chunked) = Step(model, images, labels, 7); // 7 rows: several chunks, the last one short

        Assert.True(Math.Abs(wholeLoss - chunkedLoss) <= 1e-6 * Math.Abs(wholeLoss), $"loss {chunkedLoss} in chunks, {wholeLoss} at once");
        Assert.Equal(whole.Keys.Order(), chunked.Keys.Order());
        Assert.Contains(whole.Keys, k => k.Contains("cond_proj", StringComparison.Ordinal));  // the head's own parameters
        Assert.Contains(whole.Keys, k => !k.Contains("next_fractal", StringComparison.Ordinal)); // and level 0's, through the conditions
        foreach (var (name, expected) in whole)
        {
            var actual = chunked[name];
            double scale = Math.Max(1e-3, expected.Max(Math.Abs));
            double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4 * scale, $"{name}: gradients differ by {worst:G3} (largest {scale:G3})");
        }
    }
}
