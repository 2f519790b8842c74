using FractalMesh.Model.Sampling;
using Xunit;

namespace FractalMesh.Rpc.Tests;

/// <summary>Two replicas of level 1 behind one client; one dies while it holds rows of a request.</summary>
public class FailoverTests
{
    [Fact]
    public async Task AReplicaKilledMidRequestDoesNotLoseTheRequest()
    {
        // A long batching window keeps each call inside its replica for a while: long enough to kill one mid-request.
        var settings = LevelServiceProcess.LevelOneSettings(maxBatchRows: 1000, startDelayMs: 700, maxQueueRows: 1000);
        var starting = new[] { LevelServiceProcess.StartAsync(settings), LevelServiceProcess.StartAsync(settings) };
        await using var a = await starting[0];
        await using var b = await starting[1];

        using var remote = new RemotePatchSampler(new RemoteLevelOptions
        {
            Addresses = [a.Address, b.Address],
            Level = 1,
            MinRowsPerShard = 1,     // every call is spread over both replicas
            Timeout = TimeSpan.FromSeconds(60),
        }, patchSize: TestModel.Model.Config.ImageSizes[2]);

        var images = TestModel.Images(2, seed: 7);
        var options = TestModel.Options(2f);
        var local = new FractalSampler(TestModel.Model).Generate(images, options);

        // Warm-up: both replicas connected, so that round-robin sends one shard to each.
        var warm = new FractalSampler(TestModel.Model, (inner, level) => level == 1 ? remote : inner).Generate(images, options with { NumIter = [1, 1] });
        Assert.Equal(new FractalSampler(TestModel.Model).Generate(images, options with { NumIter = [1, 1] }), warm);

        int linesA = a.Output.Count;
        var generating = Task.Run(() =>
            new FractalSampler(TestModel.Model, (inner, level) => level == 1 ? remote : inner).Generate(images, options));
        await a.WaitForLineAsync("queued", linesA, TimeSpan.FromSeconds(30));   // replica A holds a shard now
        a.Kill();

        var distributed = await generating.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(local, distributed);
        Assert.True(a.HasExited);
        Assert.DoesNotContain(a.Output.Skip(linesA), l => l.Contains("sampling"));   // A never finished its shard: B did
    }
}
