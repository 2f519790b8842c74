using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Xunit;

namespace FractalMesh.Model.Tests;

public class RecommendedSamplingUnitTests
{
    [Fact]
    public void ParsesGenerateOptionNamesAndLeavesTheRestAtTheOfficialDefaults()
    {
        var full = RecommendedSampling.Parse("cfg=4, schedule=constant,temperature=1.2,temperature-schedule=linear");
        Assert.Equal(new RecommendedSampling(4f, "constant", 1.2f, "linear"), full);
        Assert.False(full.LinearCfg);
        Assert.True(full.LinearTemperature);
        Assert.Equal("--cfg 4 --schedule constant --temperature 1.2 --temperature-schedule linear", full.AsOptions());

        var partial = RecommendedSampling.Parse("temperature=0.9");
        Assert.Equal(new RecommendedSampling(1f, "linear", 0.9f, "constant", 1e-4f), partial);
        Assert.Equal("--cfg 1 --schedule linear --temperature 0.9", partial.AsOptions());

        var filtered = RecommendedSampling.Parse("cfg=4,filter=0.001");
        Assert.Equal(0.001f, filtered.Filter);
        Assert.Equal("--cfg 4 --schedule linear --temperature 1 --filter 0.001", filtered.AsOptions());
    }

    [Theory]
    [InlineData("cfg=0.5", "cfg")]
    [InlineData("cfg=51", "cfg")]
    [InlineData("cfg=NaN", "cfg")]
    [InlineData("cfg=four", "cfg")]
    [InlineData("schedule=cosine", "schedule")]
    [InlineData("temperature=0", "temperature")]
    [InlineData("temperature=101", "temperature")]
    [InlineData("temperature-schedule=steps", "temperature-schedule")]
    [InlineData("filter=0", "filter")]
    [InlineData("filter=1.5", "filter")]
    [InlineData("filter=-0.001", "filter")]
    [InlineData("guidance=4", "guidance")]
    [InlineData("cfg=4,cfg=5", "cfg")]
    [InlineData("cfg", "cfg")]
    [InlineData("", "name=value")]
    public void RefusesWhatIsOutOfRangeOrUnknownNamingTheSetting(string text, string named)
    {
        var e = Assert.Throws<FormatException>(() => RecommendedSampling.Parse(text));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void TravelsInTheCheckpointMetadataAndIsAbsentWhereNotGiven()
    {
        using var model = new FractalModel(TensorLifetimeUnitTests.Tiny("mar"));
        string with = Path.Combine(Path.GetTempPath(), $"fm-rec-{Guid.NewGuid():N}.safetensors");
        string without = Path.Combine(Path.GetTempPath(), $"fm-norec-{Guid.NewGuid():N}.safetensors");
        try
        {
            var settings = new RecommendedSampling(3.5f, "constant", 1.25f, "constant", 0.002f);
            ModelCheckpoint.Save(model, with, extraMetadata: new Dictionary<string, string> { [RecommendedSampling.MetadataKey] = settings.ToJson() });
            ModelCheckpoint.Save(model, without);
            Assert.Equal(settings, ModelCheckpoint.ReadRecommendedSampling(with));
            Assert.Null(ModelCheckpoint.ReadRecommendedSampling(without));
            Assert.Null(ModelCheckpoint.ReadRecommendedSampling(Path.GetTempPath()));
            // The settings are advice in the metadata: the weights load as before.
            using var loaded = ModelCheckpoint.Load(with);
            Assert.True(loaded.Config.SameShape(model.Config));
        }
        finally
        {
            File.Delete(with);
            File.Delete(without);
        }
    }

    [Fact]
    public void AnEntryWrittenBeforeTheFilterExistedReadsAsTheOfficialFilter()
    {
        var settings = RecommendedSampling.FromJson("""{"cfg":4,"cfgSchedule":"constant","temperature":1.2,"temperatureSchedule":"constant"}""");
        Assert.Equal(new RecommendedSampling(4f, "constant", 1.2f, "constant", SamplingOptions.DefaultFilterThreshold), settings);
        Assert.Equal(0.001f, RecommendedSampling.FromJson(new RecommendedSampling(4f, "constant", 1.2f, "constant", 0.001f).ToJson()).Filter);
    }

    [Theory]
    [InlineData("""{"cfg":0,"cfgSchedule":"linear","temperature":1,"temperatureSchedule":"constant"}""", "cfg")]
    [InlineData("""{"cfg":2,"temperature":1,"temperatureSchedule":"constant"}""", "schedule")]
    [InlineData("""{"cfg":2,"cfgSchedule":"linear","temperature":-1,"temperatureSchedule":"constant"}""", "temperature")]
    [InlineData("""{"cfg":2,"cfgSchedule":"linear","temperature":1,"temperatureSchedule":"constant","filter":0}""", "filter")]
    [InlineData("""[1,2]""", RecommendedSampling.MetadataKey)]
    [InlineData("""not json""", RecommendedSampling.MetadataKey)]
    public void AMalformedEntryIsInvalidDataNotASilentDefault(string json, string named)
    {
        var e = Assert.Throws<InvalidDataException>(() => RecommendedSampling.FromJson(json));
        Assert.Contains(RecommendedSampling.MetadataKey, e.Message);
        Assert.Contains(named, e.Message);
    }
}
