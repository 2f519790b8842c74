using FractalMesh.Gateway.Extensions;
using FractalMesh.Gateway.Services;
using FractalMesh.Model.Sampling;
using Xunit;

namespace FractalMesh.Gateway.UnitTests;

/// <summary>DescribeModel's message carries every field of <c>GET /v1/model</c>, the recommendation included.</summary>
public sealed class DescribeModelUnitTests
{
    static WebPageExtensions.ModelInfo Info(RecommendedSampling? recommended) => new(
        32, 3, ["Smileys", "People", "class 2"], 2, [64, 16], [16, 8],
        new WebPageExtensions.ModelLimits(1, 50, 100, 8, 16384), recommended);

    [Fact]
    public void EveryFieldOfTheRestDescriptionIsInTheMessage()
    {
        var message = ImageGenerationService.Message(Info(new RecommendedSampling(4f, "constant", 1.2f, "linear", 0.001f)));
        Assert.Equal(32, message.ImageSize);
        Assert.Equal(3, message.ClassCount);
        Assert.Equal(["Smileys", "People", "class 2"], message.ClassNames);
        Assert.Equal(2, message.Levels);
        Assert.Equal([64, 16], message.PatchesPerLevel);
        Assert.Equal([16, 8], message.DefaultNumIter);
        Assert.Equal((1f, 50f, 100f, 8, 16384),
            (message.Limits.MinCfg, message.Limits.MaxCfg, message.Limits.MaxTemperature, message.Limits.MaxImagesPerRequest, message.Limits.MaxImageBytes));
        // The recommendation is a SamplingParams a client can send back as a request's params.
        var r = message.Recommended;
        Assert.Equal((4f, "constant", 1.2f, "linear", 0.001f), (r.Cfg, r.CfgSchedule, r.Temperature, r.TemperatureSchedule, r.FilterThreshold));
        Assert.Empty(r.NumIter);
    }

    [Fact]
    public void AModelWithoutARecommendationLeavesItUnset() =>
        Assert.Null(ImageGenerationService.Message(Info(null)).Recommended);
}
