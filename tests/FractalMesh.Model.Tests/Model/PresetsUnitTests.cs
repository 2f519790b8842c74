using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using Xunit;

namespace FractalMesh.Model.Tests;

public class PresetsUnitTests
{
    [Theory]
    [InlineData("fractalar_in64", 442_068_224L)]
    [InlineData("fractalmar_in64", 431_995_648L)]
    [InlineData("fractalmar_base_in256", 186_300_224L)]
    [InlineData("fractalmar_large_in256", 437_000_064L)]
    [InlineData("fractalmar_huge_in256", 849_586_240L)]
    public void OfficialParameterCountsMatchTheReference(string preset, long expected)
    {
        long count = TestData.OnMeta(() =>
        {
            using var model = new FractalModel(Presets.Get(preset));
            return model.parameters().Sum(p => p.numel());
        });
        Assert.Equal(expected, count);
    }

    [Fact]
    public void ConfigJsonRoundTrips()
    {
        foreach (var (_, config) in Presets.All)
        {
            Assert.True(FractalConfig.FromJson(config.ToJson()).SameShape(config));
        }
    }

    [Fact]
    public void BadConfigNamesTheField()
    {
        var e = Assert.Throws<ArgumentException>(() => Presets.Get("fractalmar_tiny_in32") with { Heads = [5, 4, 4] } is var c ? c.Validate() : null);
        Assert.Contains("num_heads_list", e.Message);
    }
}
