using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Rpc.Tests;

/// <summary>
/// A small model with the shape of the 256×256 presets (three MAR levels with guiding pixels, then the pixel head) as four
/// level services, each calling the next: level 0 → level 1 → level 2 → pixel head.
/// </summary>
public sealed class FourLevelPipeline : IAsyncLifetime
{
    public static readonly FractalConfig Config = new()
    {
        ImageSizes = [16, 8, 2, 1], Widths = [48, 32, 16, 16], Blocks = [1, 1, 1, 1], Heads = [4, 2, 2, 2],
        Generators = [GeneratorKind.Mar, GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, GuidingPixel = true, ClassNum = 10,
    };

    public string ModelPath { get; } = Path.Combine(Path.GetTempPath(), $"fm-four-levels-{Guid.NewGuid():N}.safetensors");
    public FractalModel Model { get; private set; } = null!;
    public List<LevelServiceProcess> Services { get; } = [];

    public async Task InitializeAsync()
    {
        manual_seed(23);
        Model = new FractalModel(Config);
        Model.eval();
        ModelCheckpoint.Save(Model, ModelPath);
        // From the bottom up, so that every service's next level is listening when it starts.
        string? next = null;
        for (int level = Config.Levels; level >= 0; level--)
        {
            var settings = new Dictionary<string, string>
            {
                ["Level:Model"] = ModelPath,
                ["Level:FirstLevel"] = level.ToString(),
                ["Level:TorchThreads"] = "1",
            };
            if (level < Config.Levels)
            {
                settings["Level:LastLevel"] = level.ToString();
                settings["Level:NextAddresses:0"] = next!;
            }
            var service = await LevelServiceProcess.StartAsync(settings);
            Services.Insert(0, service);
            next = service.Address;
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var service in Services) await service.DisposeAsync();
        Model?.Dispose();
        File.Delete(ModelPath);
    }
}

public class FourLevelPipelineTests(FourLevelPipeline pipeline) : IClassFixture<FourLevelPipeline>
{
    [Fact]
    public async Task FourServicesOneLevelEachGiveTheBytesOfOneProcessStepByStep()
    {
        var images = new[] { new ImageRequest(3, 40), new ImageRequest(-1, 41), new ImageRequest(7, 42) };
        var options = new SamplingOptions { Cfg = 2.5f, Temperature = 1.2f, NumIter = [4, 2, 2] };
        var steps = new List<LevelStep>();
        var local = new FractalSampler(pipeline.Model).Generate(images, options, steps.Add);

        using var remote = new RemoteImageGenerator(new RemoteLevelOptions { Addresses = [pipeline.Services[0].Address], Level = 0 });
        var seen = new List<LevelStep>();
        var bytes = await remote.GenerateAsync(images, options, 0, step => { seen.Add(step); return ValueTask.CompletedTask; }, CancellationToken.None);

        Assert.Equal(local, bytes);
        Assert.Equal(steps.Select(s => s.Partial), seen.Select(s => s.Partial));     // every level-0 step, the same partial images
        for (int level = 1; level <= FourLevelPipeline.Config.Levels; level++)
            Assert.True(pipeline.Services[level].Output.Any(l => l.Contains($"level {level}: queued")), $"level {level}:\n{string.Join("\n", pipeline.Services[level].Output)}");   // each level ran in its own process
    }
}
