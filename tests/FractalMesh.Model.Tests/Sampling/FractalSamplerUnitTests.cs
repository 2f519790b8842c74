using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

[Collection("TorchStatistics")]
public class FractalSamplerUnitTests
{
    internal static readonly FractalConfig Mar = new()
    {
        ImageSizes = [16, 4, 1], Widths = [48, 32, 16], Blocks = [2, 1, 1], Heads = [4, 2, 2],
        Generators = [GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, ClassNum = 10,
    };
    internal static readonly FractalConfig Ar = Mar with { Generators = [GeneratorKind.Ar, GeneratorKind.Ar], NumConds = 1 };
    internal static readonly FractalConfig Guiding = new()
    {
        ImageSizes = [16, 8, 2, 1], Widths = [48, 32, 16, 16], Blocks = [1, 1, 1, 1], Heads = [4, 2, 2, 2],
        Generators = [GeneratorKind.Mar, GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, GuidingPixel = true, ClassNum = 10,
    };

    public static TheoryData<string> Kinds => new() { "mar", "ar", "guiding" };

    static FractalModel Model(string kind)
    {
        manual_seed(7);
        var model = new FractalModel(kind switch { "mar" => Mar, "ar" => Ar, _ => Guiding });
        model.eval();
        return model;
    }

    static SamplingOptions Options(string kind, float cfg = 3f) => new() { Cfg = cfg, NumIter = kind == "guiding" ? [4, 2, 1] : [4, 4] };

    static byte[] Image(byte[] all, int index, int size) => all.AsSpan(index * 3 * size * size, 3 * size * size).ToArray();

    [Theory]
    [MemberData(nameof(Kinds))]
    public void AnImageIsTheSameAloneInABatchOfFourAndInABatchOfSixteen(string kind)
    {
        using var model = Model(kind);
        var sampler = new FractalSampler(model);
        var options = Options(kind);
        var alone = sampler.Generate([new ImageRequest(3, 1000)], options);
        var four = sampler.Generate(Enumerable.Range(0, 4).Select(i => new ImageRequest(i == 2 ? 3 : i, i == 2 ? 1000 : 50 + i)).ToList(), options);
        var sixteen = sampler.Generate(Enumerable.Range(0, 16).Select(i => new ImageRequest(i == 11 ? 3 : i % 10, i == 11 ? 1000 : 70 + i)).ToList(), options);
        Assert.Equal(alone, Image(four, 2, 16));
        Assert.Equal(alone, Image(sixteen, 11, 16));
        Assert.NotEqual(alone, Image(four, 1, 16));
    }

    [Theory]
    [InlineData("mar")]
    [InlineData("ar")]
    public void ALinearTemperatureRampsFromOneOverLevelZerosStepsAndHandsEachStepsValueDown(string kind)
    {
        using var model = Model(kind);
        ImageRequest[] images = [new(3, 1000), new(5, 1001)];
        var seen = new List<float[]>();
        var recorded = new FractalSampler(model, (inner, level) => level == 1 ? new RecordingSampler(inner, seen) : inner);
        var options = Options(kind) with { Temperature = 3f, LinearTemperature = true };
        var ramped = recorded.Generate(images, options);

        // Level 0 has 16 patches: the MAR plan's 4 steps, or the AR level's 16; each step's value is the guidance ramp's.
        int patches = 16;
        double[] expected = kind == "mar"
            ? MarSchedule.Plan(patches, options.NumIter[0]).Select(step => MarSchedule.LinearCfg(3, patches, step.MaskLenAfter)).ToArray()
            : Enumerable.Range(0, patches).Select(t => MarSchedule.LinearCfgAr(3, patches, t)).ToArray();
        Assert.Equal(expected.Length, seen.Count);
        for (int step = 0; step < expected.Length; step++)
            Assert.All(seen[step], t => Assert.Equal(expected[step], t, 5));
        // Like guidance, the MAR ramp counts the patches revealed after each step, and the reference always leaves one masked
        // until the last step: it ends at 1 + 2·15/16 = 2.875 there, at 3 on the AR level.
        Assert.True(expected[0] < 1.5 && expected[^1] == (kind == "mar" ? 2.875 : 3), $"the ramp runs {expected[0]} → {expected[^1]}");

        var sampler = new FractalSampler(model);
        Assert.NotEqual(ramped, sampler.Generate(images, options with { LinearTemperature = false }));
        // Ramping up to 1 is the constant temperature 1.
        Assert.Equal(sampler.Generate(images, options with { Temperature = 1f, LinearTemperature = false }),
            sampler.Generate(images, options with { Temperature = 1f }));
    }

    /// <summary>Passes every request on and keeps a copy of its rows' temperatures, call by call.</summary>
    sealed class RecordingSampler(IPatchSampler inner, List<float[]> temperatures) : IPatchSampler
    {
        public int PatchSize => inner.PatchSize;

        public Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
        {
            lock (temperatures) temperatures.Add(request.Temperature.ToArray());
            return inner.SampleAsync(request, cancel);
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void KnownPixelsComeBackUnchanged(string kind)
    {
        using var model = Model(kind);
        var sampler = new FractalSampler(model);
        var rng = new Random(5);
        var pixels = new byte[3 * 16 * 16];
        rng.NextBytes(pixels);
        var mask = new bool[16 * 16];
        for (int i = 0; i < mask.Length; i++) mask[i] = (i / 16) < 9 || (i % 16) == 3;   // top rows and a column: whole and partial patches
        var result = sampler.Generate([new ImageRequest(2, 9, pixels, mask)], Options(kind));
        int changed = 0;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < mask.Length; i++)
            {
                if (mask[i]) Assert.Equal(pixels[c * 256 + i], result[c * 256 + i]);
                else if (pixels[c * 256 + i] != result[c * 256 + i]) changed++;
            }
        Assert.True(changed > 0);
    }

    [Fact]
    public void SamplingLeavesNoLiveTensorAfterFiftyCalls()
    {
        using var model = Model("mar");
        var sampler = new FractalSampler(model);
        sampler.Generate([new ImageRequest(1, 1)], Options("mar"));   // warm-up: caches that live with the model
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 50; i++) sampler.Generate([new ImageRequest(i % 10, i)], Options("mar", cfg: i % 2 == 0 ? 1f : 2f) with { NumIter = [2, 2] });
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

[Collection("TorchStatistics")]
public class SamplerResumptionUnitTests
{
    [Theory]
    [InlineData("mar", 2)]
    [InlineData("ar", 5)]
    [InlineData("guiding", 1)]
    public void ResumingFromAStepsPartialImageGivesTheSameBytes(string kind, int resumeAt)
    {
        manual_seed(7);
        var config = kind switch
        {
            "mar" => new FractalConfig { ImageSizes = [16, 4, 1], Widths = [48, 32, 16], Blocks = [1, 1, 1], Heads = [4, 2, 2], Generators = [GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, ClassNum = 10 },
            "ar" => new FractalConfig { ImageSizes = [16, 4, 1], Widths = [48, 32, 16], Blocks = [1, 1, 1], Heads = [4, 2, 2], Generators = [GeneratorKind.Ar, GeneratorKind.Ar], NumConds = 1, ClassNum = 10 },
            _ => new FractalConfig { ImageSizes = [16, 8, 2, 1], Widths = [48, 32, 16, 16], Blocks = [1, 1, 1, 1], Heads = [4, 2, 2, 2], Generators = [GeneratorKind.Mar, GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, GuidingPixel = true, ClassNum = 10 },
        };
        using var model = new FractalModel(config);
        var sampler = new FractalSampler(model);
        var options = new SamplingOptions { Cfg = 2f, NumIter = kind == "guiding" ? [4, 2, 1] : [4, 4] };
        // An inpainting request, so that resumption also has to respect what was originally known.
        var known = new byte[3 * 256];
        new Random(2).NextBytes(known);
        var mask = Enumerable.Range(0, 256).Select(i => i < 48).ToArray();
        var requests = new[] { new ImageRequest(4, 21, known, mask), new ImageRequest(6, 22) };
        LevelStep? checkpoint = null;
        var full = sampler.Generate(requests, options, step => { if (step.Step == resumeAt - 1) checkpoint = step; });
        Assert.NotNull(checkpoint);
        var partial = checkpoint!.Value;
        var resumed = sampler.Generate(
            requests.Select((r, i) => r with
            {
                KnownPixels = partial.Partial.AsSpan(i * 768, 768).ToArray(),
                KnownMask = partial.Done.AsSpan(i * 256, 256).ToArray(),
                OriginalKnownMask = r.KnownMask ?? new bool[256],
            }).ToList(),
            options, startStep: resumeAt);
        Assert.Equal(full, resumed);
    }
}
