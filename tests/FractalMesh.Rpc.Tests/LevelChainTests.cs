using System.Globalization;
using System.Text.RegularExpressions;
using FractalMesh.Model.Sampling;
using Xunit;

namespace FractalMesh.Rpc.Tests;

/// <summary>Two LevelService processes: level 0 (configured with the other's address) and level 1 with the pixel head.</summary>
public sealed class LevelChain : IAsyncLifetime
{
    public LevelServiceProcess Bottom { get; private set; } = null!;
    public LevelServiceProcess Top { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Bottom = await LevelServiceProcess.StartAsync(LevelServiceProcess.LevelOneSettings());
        var top = LevelServiceProcess.LevelOneSettings();
        top["Level:FirstLevel"] = "0";
        top["Level:LastLevel"] = "0";
        top["Level:NextAddresses:0"] = Bottom.Address;
        Top = await LevelServiceProcess.StartAsync(top);
    }

    public async Task DisposeAsync()
    {
        await Top.DisposeAsync();
        await Bottom.DisposeAsync();
    }
}

/// <summary>The whole image crosses two process boundaries: the test calls level 0, which calls level 1.</summary>
public class LevelChainTests(LevelChain chain) : IClassFixture<LevelChain>
{
    RemotePatchSampler LevelZero(TimeSpan timeout) => new(
        new RemoteLevelOptions { Addresses = [chain.Top.Address], Level = 0, Timeout = timeout },
        patchSize: TestModel.Model.Config.ImageSizes[1]);

    [Theory]
    [InlineData(1f)]
    [InlineData(2f)]
    public async Task LevelZeroServiceCallingLevelOneServiceGivesTheSameBytesAsInProcess(float cfg)
    {
        var images = TestModel.Images(2, seed: 300);
        var options = TestModel.Options(cfg);
        var local = new FractalSampler(TestModel.Model).Generate(images, options);
        int lines = chain.Bottom.Output.Count;
        using var remote = LevelZero(TimeSpan.FromSeconds(60));
        using var request = TestModel.LevelZeroRequest(images, options);
        Assert.Equal(local, await remote.SampleAsync(request));
        Assert.Contains(chain.Bottom.Output.Skip(lines), l => l.Contains("level 1: sampling"));   // level 1 ran in the other process
    }

    [Fact]
    public async Task TheCallersDeadlineTravelsDownToTheNextLevel()
    {
        var images = TestModel.Images(1, seed: 9);
        var options = TestModel.Options(1f) with { NumIter = [1, 1] };
        int lines = chain.Bottom.Output.Count;
        using var remote = LevelZero(TimeSpan.FromSeconds(20));    // level 0's own default for level 1 is 120 s
        using var request = TestModel.LevelZeroRequest(images, options);
        await remote.SampleAsync(request);
        var queued = chain.Bottom.Output.Skip(lines).First(l => l.Contains("level 1: queued"));
        var left = double.Parse(Regex.Match(queued, @"deadline in ([0-9.]+) s").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(left, 0.1, 20.0);
    }

    [Fact]
    public async Task ALevelZeroServiceResumedFromAPartialImageGivesTheSameBytes()
    {
        var images = TestModel.Images(2, seed: 77);
        var options = TestModel.Options(2f);
        LevelStep? checkpoint = null;
        var local = new FractalSampler(TestModel.Model).Generate(images, options, step => { if (step.Step == 1) checkpoint = step; });
        using var remote = LevelZero(TimeSpan.FromSeconds(60));
        using var fresh = TestModel.LevelZeroRequest(images, options);
        using var resumed = new PatchRequest
        {
            Conds = fresh.Conds.Select(c => c.clone()).ToArray(),
            NullConds = fresh.NullConds?.Select(c => c.clone()).ToArray(),
            Size = fresh.Size,
            KnownPixels = checkpoint!.Value.Partial,
            KnownMask = checkpoint.Value.Done,
            Cfg = fresh.Cfg,
            Temperature = fresh.Temperature,
            FilterThreshold = fresh.FilterThreshold,
            NumIter = fresh.NumIter,
            Streams = fresh.Streams,
            LinearCfg = fresh.LinearCfg,
            LinearTemperature = fresh.LinearTemperature,
            StartStep = 2,
            OriginalKnownMask = fresh.KnownMask,
        };
        Assert.Equal(local, await remote.SampleAsync(resumed));
    }
}
