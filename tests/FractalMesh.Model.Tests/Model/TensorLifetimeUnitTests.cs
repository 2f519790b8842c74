using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>Forward, loss and likelihood leave no live tensor behind: every intermediate is disposed deterministically.</summary>
[Collection("TorchStatistics")]
public class TensorLifetimeUnitTests
{
    public static TheoryData<string> Configs => new() { "ar", "mar", "mar-guiding" };

    /// <summary>A tiny model of each kind (AR, MAR, MAR with guiding pixels), for tests that run whole training steps.</summary>
    internal static FractalConfig Tiny(string kind) => kind switch
    {
        "ar" => new() { ImageSizes = [8, 2, 1], Widths = [32, 16, 16], Blocks = [1, 1, 1], Heads = [2, 2, 2], Generators = [GeneratorKind.Ar, GeneratorKind.Ar], NumConds = 1, ClassNum = 3 },
        "mar" => new() { ImageSizes = [8, 2, 1], Widths = [32, 16, 16], Blocks = [1, 1, 1], Heads = [2, 2, 2], Generators = [GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, ClassNum = 3 },
        _ => new() { ImageSizes = [8, 4, 2, 1], Widths = [32, 16, 16, 16], Blocks = [1, 1, 1, 1], Heads = [2, 2, 2, 2], Generators = [GeneratorKind.Mar, GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, GuidingPixel = true, ClassNum = 3 },
    };

    /// <summary>
    /// Each kind, with the pixel heads' backward at once (0) and eager in chunks of 7 rows (the trainer's way), in float32
    /// and with bfloat16 products (train --bf16).
    /// </summary>
    public static TheoryData<string, long, bool> TrainingConfigs => new()
    {
        { "ar", 0, false }, { "mar", 0, false }, { "mar-guiding", 0, false }, { "ar", 7, false }, { "mar", 7, false }, { "mar-guiding", 7, false },
        { "ar", 7, true }, { "mar", 7, true }, { "mar-guiding", 7, true },
    };

    [Theory]
    [MemberData(nameof(TrainingConfigs))]
    public void TrainingLossAndBackwardLeaveNothingAlive(string kind, long headChunkRows, bool bfloat16)
    {
        using var model = new FractalModel(Tiny(kind));
        model.train();
        model.UseEagerHeadBackward(headChunkRows);
        model.UseMatmulType(bfloat16 ? ScalarType.BFloat16 : null);
        using var images = randn(4, 3, 8, 8);
        using var labels = tensor(new long[] { 0, 1, 2, 1 });
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 3; i++)
        {
            using var loss = model.Loss(images, labels);
            loss.backward();
        }
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void LikelihoodPassLeavesNothingAlive(string kind)
    {
        using var model = new FractalModel(Tiny(kind));
        model.eval();
        using var images = randn(4, 3, 8, 8);
        using var labels = tensor(new long[] { 0, 1, 2, 1 });
        DisposeScopeManager.Statistics.Reset();
        using (no_grad())
        {
            for (int i = 0; i < 3; i++)
            {
                using var loss = model.Loss(images, labels);
                Assert.True(loss.item<float>() > 0);
                using var items = model.ItemLosses(images, labels);
                Assert.Equal([4L], items.shape);
            }
        }
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
