using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

public class ModelCheckpointUnitTests
{
    static string Case(string name) => TestData.Path("reference", "parity", name);

    [Theory]
    [InlineData("tiny_ar")]
    [InlineData("tiny_mar")]
    public void OfficialCheckpointRoundTripsThroughTheOwnFormat(string caseName)
    {
        var config = FractalConfig.FromJson(File.ReadAllText(Path.Combine(Case(caseName), "config.json")));
        string path = Path.Combine(Path.GetTempPath(), $"fm-{caseName}-{Guid.NewGuid():N}.safetensors");
        try
        {
            ModelCheckpoint.ConvertOfficial(Path.Combine(Case(caseName), "checkpoint-last.pth"), config, path);
            using var official = ModelCheckpoint.LoadOfficial(Path.Combine(Case(caseName), "checkpoint-last.pth"), config);
            using var own = ModelCheckpoint.Load(path);
            Assert.True(own.Config.SameShape(config));
            var a = official.state_dict();
            var b = own.state_dict();
            Assert.Equal(a.Keys, b.Keys);
            foreach (var key in a.Keys) Assert.True(TestData.Same(a[key], b[key]), key);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ALowerLevelLoadsOnlyItsOwnWeightsAndEqualsTheWholeModelThere()
    {
        string folder = Case("tiny_mar");
        var config = FractalConfig.FromJson(File.ReadAllText(Path.Combine(folder, "config.json")));
        string path = Path.Combine(Path.GetTempPath(), $"fm-levels-{Guid.NewGuid():N}.safetensors");
        try
        {
            ModelCheckpoint.ConvertOfficial(Path.Combine(folder, "checkpoint-last.pth"), config, path);
            using var whole = ModelCheckpoint.Open(path);
            foreach (var lower in new[] { ModelCheckpoint.Open(path, null, null, 1), ModelCheckpoint.Open(folder, null, null, 1) })
            {
                using (lower)
                {
                    Assert.Equal(1, lower.Level);
                    var expected = whole.Next!.state_dict();
                    var got = lower.state_dict();
                    Assert.Equal(expected.Keys, got.Keys);
                    foreach (var key in expected.Keys) Assert.True(expected[key].eq(got[key]).all().item<bool>(), key);
                    // Nothing of level 0: fewer parameters than the whole model by exactly level 0's own.
                    long levelZero = whole.parameters().Sum(p => p.numel()) - whole.Next!.parameters().Sum(p => p.numel());
                    Assert.True(levelZero > 0);
                    Assert.Equal(whole.parameters().Sum(p => p.numel()) - levelZero, lower.parameters().Sum(p => p.numel()));
                }
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void WrongCheckpointListsMissingUnexpectedAndMisShapedKeys()
    {
        var marConfig = FractalConfig.FromJson(File.ReadAllText(Path.Combine(Case("tiny_mar"), "config.json")));
        var e = Assert.Throws<CheckpointMismatchException>(() =>
            ModelCheckpoint.LoadOfficial(Path.Combine(Case("tiny_ar"), "checkpoint-last.pth"), marConfig));
        Assert.Contains("missing keys", e.Message);
        Assert.Contains("generator.mask_token", e.Message);
        Assert.Contains("unexpected keys", e.Message);
        Assert.Contains("generator.blocks.0.attention.wqkv.weight", e.Message);
    }

    [Fact]
    public void MisShapedKeysAreNamedWithBothShapes()
    {
        var config = FractalConfig.FromJson(File.ReadAllText(Path.Combine(Case("tiny_ar"), "config.json"))) with { ClassNum = 7 };
        var e = Assert.Throws<CheckpointMismatchException>(() =>
            ModelCheckpoint.LoadOfficial(Path.Combine(Case("tiny_ar"), "checkpoint-last.pth"), config));
        Assert.Contains("class_emb.weight: checkpoint 10x64, model 7x64", e.Message);
    }

    [Fact]
    public void HalfPrecisionCheckpointLoadsIntoFloatModel()
    {
        var config = Presets.Get("fractalmar_tiny_in32");
        string path = Path.Combine(Path.GetTempPath(), $"fm-half-{Guid.NewGuid():N}.safetensors");
        try
        {
            using var model = new Modules.FractalModel(config);
            ModelCheckpoint.Save(model, path, halfPrecision: true);
            using var loaded = ModelCheckpoint.Load(path);
            var a = model.state_dict();
            var b = loaded.state_dict();
            foreach (var key in a.Keys)
            {
                Assert.Equal(ScalarType.Float32, b[key].dtype);
                Assert.True(TestData.Same(a[key].to_type(ScalarType.Float16).to_type(ScalarType.Float32), b[key]), key);
            }
        }
        finally { File.Delete(path); }
    }
}
