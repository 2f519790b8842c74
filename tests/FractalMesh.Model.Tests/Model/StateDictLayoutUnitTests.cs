using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>The module tree names and shapes every tensor exactly as the official checkpoints do.</summary>
public class StateDictLayoutUnitTests
{
    public static TheoryData<string> OfficialPresets => new() { "fractalar_in64", "fractalmar_in64", "fractalmar_base_in256", "fractalmar_large_in256", "fractalmar_huge_in256" };

    [Theory]
    [MemberData(nameof(OfficialPresets))]
    public void NamesAndShapesEqualTheOfficialList(string preset)
    {
        var expected = File.ReadAllLines(TestData.Path("reference", "keys", preset + ".tsv")).Skip(1)
            .Select(l => l.Split('\t')).Select(p => $"{p[0]}\t{p[1]}").ToList();
        var actual = TestData.OnMeta(() =>
        {
            using var model = new FractalModel(Presets.Get(preset));
            return model.state_dict().Select(kv => $"{kv.Key}\t{string.Join("x", kv.Value.shape)}").ToList();
        });
        Assert.Equal(expected, actual);
    }
}
