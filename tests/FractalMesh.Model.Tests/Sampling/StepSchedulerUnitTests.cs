using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

[Collection("TorchStatistics")]
public class StepSchedulerUnitTests
{
    // The small configurations of the sampler tests: MAR, AR, and MAR with guiding pixels (the 256×256 presets' shape).
    static readonly FractalConfig Mar = FractalSamplerUnitTests.Mar, Ar = FractalSamplerUnitTests.Ar, Guiding = FractalSamplerUnitTests.Guiding;

    public static TheoryData<string> Kinds => new() { "mar", "guiding", "ar" };

    /// <summary>Requests of mixed classes, guidance, temperature and iterations, as different callers send them.</summary>
    static (ImageRequest[] Images, SamplingOptions Options)[] Requests(string kind)
    {
        int[][] iters = kind == "guiding" ? [[4, 2, 1], [2, 2, 1], [3, 1, 1]] : [[4, 4], [2, 4], [4, 2]];
        return Enumerable.Range(0, 6).Select(i => (
            Enumerable.Range(0, 1 + i % 3).Select(j => new ImageRequest(i % 2 == 0 ? (i + j) % 10 : -1 + (i + j) % 3, 500 + 10 * i + j)).ToArray(),
            new SamplingOptions { Cfg = i % 2 == 0 ? 3f : 1f, Temperature = 1f + 0.25f * (i % 3), NumIter = iters[i % 3], LinearCfg = i % 4 != 1 })).ToArray();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task RequestsThatJoinMidGenerationShareForwardPassesAndGiveTheBytesOfRunningAlone(string kind)
    {
        manual_seed(11);
        using var model = new FractalModel(kind switch { "mar" => Mar, "ar" => Ar, _ => Guiding });
        model.eval();
        var requests = Requests(kind);
        const int cancelled = 3;

        var shared = new FractalSampler(model);
        var running = new List<Task<byte[]>>();
        using var cancel = new CancellationTokenSource();
        for (int i = 0; i < requests.Length; i++)
        {
            // Each request starts once the one before it has finished its first level-0 step: it joins mid-generation.
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            int index = i;
            running.Add(Task.Run(() => shared.GenerateAsync(requests[index].Images, requests[index].Options, step =>
            {
                started.TrySetResult();
                if (index == cancelled && step.Step == 0) cancel.Cancel();
                return ValueTask.CompletedTask;
            }, index == cancelled ? cancel.Token : CancellationToken.None)));
            await Task.WhenAny(started.Task, running[^1]);
        }
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running[cancelled]);

        for (int i = 0; i < requests.Length; i++)
        {
            if (i == cancelled) continue;
            var alone = new FractalSampler(model).Generate(requests[i].Images, requests[i].Options);
            Assert.Equal(alone, await running[i]);
        }
        // Whether two calls met in one pass depends on timing here (the passes of this tiny model take microseconds);
        // that they join the next pass is the scheduler test below.
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void PassesRunInSmallChunksGiveTheSameBytes(string kind)
    {
        manual_seed(12);
        using var model = new FractalModel(kind switch { "mar" => Mar, "ar" => Ar, _ => Guiding });
        model.eval();
        var images = Enumerable.Range(0, 5).Select(i => new ImageRequest(i % 10, 90 + i)).ToList();
        var options = new SamplingOptions { Cfg = 2f, NumIter = kind == "guiding" ? [3, 2, 1] : [3, 3] };
        var whole = new FractalSampler(model, scheduling: new SchedulerOptions { ChunkRows = -1 }).Generate(images, options);
        var chunked = new FractalSampler(model, scheduling: new SchedulerOptions { ChunkRows = 3 }).Generate(images, options);
        Assert.Equal(whole, chunked);
    }

    [Fact]
    public async Task AnIdleSchedulerRunsAtOnceAndLaterInputsJoinTheNextPassUpToTheCap()
    {
        var passes = new List<int[]>();
        var firstRunning = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        var scheduler = new StepScheduler<int, int>(inputs =>
        {
            lock (passes) passes.Add([.. inputs]);
            if (inputs[0] == 0)
            {
                firstRunning.SetResult();
                release.Task.Wait();
            }
            return inputs.Select(x => x * 10).ToArray();
        }, _ => { }, new SchedulerOptions { MaxRowsPerPass = 4, Compute = null });

        var first = scheduler.RunAsync(0, 1, CancellationToken.None);
        await firstRunning.Task;                                         // alone, with no wait for company
        using var gone = new CancellationTokenSource();
        var later = new[] { (1, 2), (2, 2), (3, 1) }.Select(p => scheduler.RunAsync(p.Item1, p.Item2, CancellationToken.None)).ToList();
        var dropped = scheduler.RunAsync(9, 1, gone.Token);
        gone.Cancel();
        Assert.Equal(5, scheduler.QueuedRows);                           // 2 + 2 + 1 wait; the cancelled input left the queue
        release.SetResult();
        Assert.Equal(0, await first);
        Assert.Equal(new[] { 10, 20, 30 }, await Task.WhenAll(later));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => dropped);
        // FIFO, at most 4 rows a pass: [1, 2] together, then [3]; the cancelled input never ran.
        Assert.Equal(new[] { new[] { 0 }, new[] { 1, 2 }, new[] { 3 } }, passes);
        Assert.Equal(3, scheduler.Statistics.Passes);
    }
}
