using System.Globalization;
using System.Text.RegularExpressions;
using FractalMesh.Cli.Commands;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Xunit;
using Xunit.Abstractions;
using static FractalMesh.Gateway.Tests.GatewayClient;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// The three-stage pipeline as real processes: a level-1 service (with the pixel head), a level-0 service calling it, and a
/// gateway in distributed mode that holds no weights and follows level 0's stream of steps.
/// </summary>
public sealed class DistributedGatewayFixture : IAsyncLifetime
{
    /// <summary>The deadline of the gateway's calls to level 0 when the incoming call has none (jobs).</summary>
    public const int LevelTimeoutSeconds = 90;

    public LevelServiceProcess Level1 { get; private set; } = null!;
    public LevelServiceProcess Level0 { get; private set; } = null!;
    public GatewayProcess Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Level1 = await LevelServiceProcess.StartAsync(LevelServiceProcess.TinyModelSettings());
        var level0 = LevelServiceProcess.TinyModelSettings(firstLevel: 0);
        level0["Level:LastLevel"] = "0";
        level0["Level:NextAddresses:0"] = Level1.Address;
        Level0 = await LevelServiceProcess.StartAsync(level0);
        Gateway = await GatewayProcess.StartAsync($"--Gateway:LevelAddresses:0={Level0.Address}", "--Gateway:TorchThreads=1",
            $"--Gateway:LevelTimeoutSeconds={LevelTimeoutSeconds}", "--Gateway:MaxConcurrentRequests=16", "--Gateway:MaxQueuedRequests=16");
    }

    public async Task DisposeAsync()
    {
        if (Gateway is not null) await Gateway.DisposeAsync();
        if (Level0 is not null) await Level0.DisposeAsync();
        if (Level1 is not null) await Level1.DisposeAsync();
    }
}

/// <summary>
/// Distributed mode: the gateway sends each request to a level-0 service, which calls a level-1 service; the same request
/// and seed give the same bytes as the embedded gateway (the shared <see cref="GatewayCollection"/> process) over gRPC,
/// REST and the command line, whatever else is in flight; jobs keep their per-step previews; the call's deadline travels
/// down to the last level.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed partial class DistributedGatewayTests(GatewayProcess embedded, DistributedGatewayFixture fixture, ITestOutputHelper output)
    : IClassFixture<DistributedGatewayFixture>
{
    GatewayProcess Distributed => fixture.Gateway;

    [GeneratedRegex(@"queued (\d+) rows .*deadline in ([0-9.]+) s")]
    private static partial Regex QueuedWithDeadline();

    [Fact]
    public async Task TheSameRequestGivesTheSameBytesAsTheEmbeddedModeOverGrpcRestAndTheCommandLine()
    {
        var mask = new byte[3 * 256];
        for (int i = 0; i < 256; i++)
            if ((i / 16 + i % 16) % 3 != 0) mask[i] = mask[256 + i] = mask[512 + i] = 255;   // white: generate; a third is kept
        IMessage[] requests =
        [
            new GenerateRequest { ClassLabels = { -1, 7 }, Count = 2, Seed = 42, Params = new SamplingParams { Cfg = 3, NumIter = { 4, 3 } } },
            new InpaintRequest
            {
                ImagePng = Png(RandomImage(5, 16, 16), 16, 16), MaskPng = Png(mask, 16, 16), ClassLabel = 2, Count = 2, Seed = 50,
                Params = new SamplingParams { Cfg = 2, NumIter = { 5, 2 } },
            },
            new OutpaintRequest { ImagePng = Png(RandomImage(2, 8, 8), 8, 8), X = -1, Y = -1, ClassLabel = 5, Seed = 70, Params = new SamplingParams { NumIter = { 3, 2 } } },
        ];
        foreach (var request in requests)
        {
            var viaEmbedded = await embedded.CallGrpcAsync(request);
            var overGrpc = await Distributed.CallGrpcAsync(request);
            var overRest = await Distributed.CallRestAsync(request);
            Assert.Equal(viaEmbedded.Images.Select(i => i.Png), overGrpc.Images.Select(i => i.Png));
            Assert.Equal(viaEmbedded.Images.Select(i => i.Png), overRest.Images.Select(i => i.Png));
            Assert.Equal(viaEmbedded.Images.Select(i => i.Seed), overRest.Images.Select(i => i.Seed));
        }
        // ... and the in-process sampler's bytes.
        var generate = (GenerateRequest)requests[0];
        Assert.Equal(JobClient.ReferencePngs(generate), (await Distributed.CallGrpcAsync(generate)).Images.Select(i => i.Png.ToByteArray()));

        // The command line's remote mode against the distributed gateway writes the same PNGs.
        var dir = Directory.CreateTempSubdirectory("fm-distributed-").FullName;
        try
        {
            int code = await CommandLine.RunAsync(["generate", "--endpoint", Distributed.GrpcAddress.ToString(), "--class", "-1,7",
                "--count", "2", "--seed", "42", "--cfg", "3", "--iters", "4,3", "--out", dir]);
            Assert.Equal(0, code);
            var expected = await embedded.CallGrpcAsync(generate);
            for (int i = 0; i < 4; i++)
                Assert.Equal(expected.Images[i].Png.ToByteArray(), File.ReadAllBytes(System.IO.Path.Combine(dir, $"generate-seed{42 + i}.png")));
        }
        finally { Directory.Delete(dir, true); }
        Assert.True(fixture.Level1.Output.Any(l => l.Contains("queued", StringComparison.Ordinal)), "the level service was never called");
        Assert.True(fixture.Level0.Output.Any(l => l.Contains("level 0: queued", StringComparison.Ordinal)), "the level-0 service was never called");
    }

    [Fact]
    public Task StaggeredRequestsWithMixedSettingsAndACancellationGiveTheBytesOfOneProcess() => StaggeredAsync(Distributed);

    [Fact]
    public async Task TheSameInAnEmbeddedGatewayThatRunsThemTogether()
    {
        await using var gateway = await GatewayProcess.StartAsync("--Gateway:MaxConcurrentRequests=16", "--Gateway:MaxQueuedRequests=16");
        await StaggeredAsync(gateway);
    }

    /// <summary>
    /// Requests sent at staggered times (each while the others are mid-generation) with mixed classes, guidance,
    /// temperature and iterations, one of them cancelled midway: every other result equals the in-process sampler's bytes.
    /// </summary>
    static async Task StaggeredAsync(GatewayProcess gateway)
    {
        var requests = Enumerable.Range(0, 6).Select(i => new GenerateRequest
        {
            ClassLabels = { i % 3 == 0 ? -1 : i, (i + 4) % 9 },
            Count = 1 + i % 2,
            Seed = 1000 + 37 * i,
            Params = new SamplingParams { Cfg = i % 2 == 0 ? 3 : 1, Temperature = 1 + 0.25f * (i % 3), NumIter = { 3 + i % 4, 2 + i % 3 } },
        }).ToList();
        var cancelled = new GenerateRequest { ClassLabels = { 2, 3 }, Count = 4, Seed = 5, Params = new SamplingParams { Cfg = 2, NumIter = { 16, 8 } } };
        using var cancel = new CancellationTokenSource();
        var doomed = gateway.Grpc.GenerateAsync(cancelled, cancellationToken: cancel.Token).ResponseAsync;
        var running = new List<Task<GenerateResponse>>();
        foreach (var request in requests)
        {
            running.Add(gateway.Grpc.GenerateAsync(request, deadline: DateTime.UtcNow.AddMinutes(3)).ResponseAsync);
            // The longest request (8 images, 16 + 8 iterations, guided) is cancelled while it runs beside the first one.
            if (running.Count == 1) cancel.Cancel();
            await Task.Delay(150);   // the next one arrives while the others are mid-generation
        }
        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => doomed);
        Assert.Equal(Grpc.Core.StatusCode.Cancelled, error.StatusCode);
        for (int i = 0; i < requests.Count; i++)
            Assert.Equal(JobClient.ReferencePngs(requests[i]), (await running[i]).Images.Select(image => image.Png.ToByteArray()));
    }

    [Fact]
    public async Task AJobReportsEveryLevelZeroStepWithAPreviewAndFinishesWithTheEmbeddedBytes()
    {
        var request = new GenerateRequest { ClassLabels = { 1, 4 }, Count = 2, Seed = 300, Params = new SamplingParams { Cfg = 2, NumIter = { 6, 4 } } };
        var job = await Distributed.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = request });
        var events = await Distributed.WatchAsync(job.Id, TimeSpan.FromSeconds(60));
        var done = events[^1];
        Assert.True(done.State == JobState.Done, $"{done}\n{Distributed.Log}");
        var steps = events.Where(e => e.State == JobState.Running && !e.PreviewPng.IsEmpty).Select(e => e.Step).ToList();
        Assert.Equal(Enumerable.Range(1, 6), steps);
        var direct = await embedded.CallGrpcAsync(request);
        Assert.Equal(direct.Images.Select(i => i.Png), done.Images.Select(i => i.Png));
    }

    [Fact]
    public async Task TheCallsDeadlineTravelsDownToTheLevelService()
    {
        var request = new GenerateRequest { ClassLabels = { 3 }, Seed = 9, Params = new SamplingParams { NumIter = { 2, 2 } } };

        int skip = fixture.Level1.Output.Count;
        await Distributed.Grpc.GenerateAsync(request, deadline: DateTime.UtcNow.AddSeconds(20));
        var withDeadline = DeadlinesSince(skip);

        // A job has no caller's deadline: its calls carry Gateway:LevelTimeoutSeconds.
        skip = fixture.Level1.Output.Count;
        var job = await Distributed.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = request });
        Assert.Equal(JobState.Done, (await Distributed.WatchAsync(job.Id, TimeSpan.FromSeconds(60)))[^1].State);
        var ofJob = DeadlinesSince(skip);

        output.WriteLine($"deadlines seen by level 1 (through level 0): call with a 20 s deadline {string.Join(", ", withDeadline)} s; job {string.Join(", ", ofJob)} s");
        Assert.Equal(2, withDeadline.Count);   // one call per level-0 step
        Assert.All(withDeadline, s => Assert.InRange(s, 0.1, 20));
        Assert.Equal(2, ofJob.Count);
        Assert.All(ofJob, s => Assert.InRange(s, 20.5, DistributedGatewayFixture.LevelTimeoutSeconds));
    }

    List<double> DeadlinesSince(int skip) => fixture.Level1.Output.Skip(skip)
        .Select(l => QueuedWithDeadline().Match(l)).Where(m => m.Success)
        .Select(m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)).ToList();
}
