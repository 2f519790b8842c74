using FractalMesh.Model.Sampling;
using FractalMesh.Rpc;
using FractalMesh.Protos.Level;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using Xunit;
using GrpcLevelSampler = FractalMesh.Protos.Level.LevelSampler;

namespace FractalMesh.LevelService.Tests;

/// <summary>
/// One LevelService process serving level 1 and the pixel head of the tiny model, shared by the tests below. Its 50 ms
/// batching window lets concurrent callers meet in one forward pass even on a busy machine.
/// </summary>
public sealed class LevelOneService : IAsyncLifetime
{
    public LevelServiceProcess Process { get; private set; } = null!;
    public GrpcChannel Channel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var settings = LevelServiceProcess.LevelOneSettings(maxBatchRows: 128, startDelayMs: 0, maxQueueRows: 128);
        settings["Level:EnableReflection"] = "true"; // off by default
        Process = await LevelServiceProcess.StartAsync(settings);
        Channel = GrpcChannel.ForAddress(Process.Address);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Process.DisposeAsync();
    }
}

public class LevelServiceTests(LevelOneService service) : IClassFixture<LevelOneService>
{
    RemotePatchSampler Remote() => new(new RemoteLevelOptions { Addresses = [service.Process.Address], Level = 1 },
        patchSize: TestModel.Model.Config.ImageSizes[2]);

    [Theory]
    [InlineData(1f)]
    [InlineData(2f)]
    public void RemoteLevelOneGivesTheSameBytesAsInProcess(float cfg)
    {
        var images = TestModel.Images(3, seed: 40);
        var options = TestModel.Options(cfg);
        var local = new FractalSampler(TestModel.Model).Generate(images, options);
        using var remote = Remote();
        var distributed = new FractalSampler(TestModel.Model, (inner, level) => level == 1 ? remote : inner).Generate(images, options);
        Assert.Equal(local, distributed);
    }

    [Fact]
    public async Task ConcurrentCallersShareBatchesAndEachGetsItsOwnImages()
    {
        var options = TestModel.Options(2f);
        var requests = Enumerable.Range(0, 3).Select(i => TestModel.Images(4, seed: 100 + 10 * i)).ToList();
        var local = requests.Select(images => new FractalSampler(TestModel.Model).Generate(images, options)).ToList();
        using var remote = Remote();
        int lines = service.Process.Output.Count;
        var distributed = await Task.WhenAll(requests.Select(images => Task.Run(() =>
            new FractalSampler(TestModel.Model, (inner, level) => level == 1 ? remote : inner).Generate(images, options))));
        for (int i = 0; i < requests.Count; i++) Assert.Equal(local[i], distributed[i]);
        // At least one forward pass served rows of more than one call.
        Assert.Contains(service.Process.Output.Skip(lines), l => System.Text.RegularExpressions.Regex.IsMatch(l, @"pass of \d+ rows of [2-9] calls"));
    }

    [Fact]
    public async Task AFloodBeyondMaxQueueRowsIsResourceExhaustedAndTheServiceKeepsServing()
    {
        var client = new GrpcLevelSampler.LevelSamplerClient(service.Channel);
        await client.SamplePatchesAsync(TestModel.LevelOneMessage(4), deadline: DateTime.UtcNow.AddSeconds(30));   // connected
        var flood = Enumerable.Range(0, 16).Select(async i =>
        {
            try
            {
                await client.SamplePatchesAsync(TestModel.LevelOneMessage(100, seed: i), deadline: DateTime.UtcNow.AddSeconds(60));
                return StatusCode.OK;
            }
            catch (RpcException e) { return e.StatusCode; }
        }).ToList();
        var statuses = await Task.WhenAll(flood);
        Assert.All(statuses, s => Assert.True(s is StatusCode.OK or StatusCode.ResourceExhausted, $"unexpected {s}"));
        Assert.Contains(StatusCode.ResourceExhausted, statuses);
        Assert.Contains(StatusCode.OK, statuses);

        var after = await client.SamplePatchesAsync(TestModel.LevelOneMessage(100, seed: 99), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(100, after.Patches.Count);
    }

    [Fact]
    public async Task AWrongConditionWidthIsInvalidArgumentNamingTheFieldAndTheServiceKeepsServing()
    {
        var client = new GrpcLevelSampler.LevelSamplerClient(service.Channel);
        var bad = TestModel.LevelOneMessage(3);
        bad.CondWidth = 63;
        var error = await Assert.ThrowsAsync<RpcException>(() => client.SamplePatchesAsync(bad).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("cond_width", error.Status.Detail);
        Assert.Contains(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations, v => v.Field == "cond_width");

        var shortRow = TestModel.LevelOneMessage(3);
        shortRow.Rows[1].Conds = ByteString.CopyFrom(shortRow.Rows[1].Conds.Span[8..]);
        var rowError = await Assert.ThrowsAsync<RpcException>(() => client.SamplePatchesAsync(shortRow).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, rowError.StatusCode);
        Assert.Contains("rows[1].conds", rowError.Status.Detail);

        var otherLevel = TestModel.LevelOneMessage(3);
        otherLevel.Level = 0;
        var levelError = await Assert.ThrowsAsync<RpcException>(() => client.SamplePatchesAsync(otherLevel).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, levelError.StatusCode);
        Assert.Contains("level", levelError.Status.Detail);

        var good = await client.SamplePatchesAsync(TestModel.LevelOneMessage(3, guided: true), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(3, good.Patches.Count);
        Assert.All(good.Patches, p => Assert.Equal(3 * 4 * 4, p.Length));
    }

    [Fact]
    public async Task HealthReportsServingForLivenessAndReadinessAndReflectionListsTheService()
    {
        var health = new Health.HealthClient(service.Channel);
        foreach (var name in new[] { "", "liveness", "readiness", GrpcLevelSampler.Descriptor.FullName })
        {
            var reply = await health.CheckAsync(new HealthCheckRequest { Service = name }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        }

        var reflection = new ServerReflection.ServerReflectionClient(service.Channel);
        using var call = reflection.ServerReflectionInfo(deadline: DateTime.UtcNow.AddSeconds(10));
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains(GrpcLevelSampler.Descriptor.FullName, names);
        Assert.Contains("grpc.health.v1.Health", names);
    }

    [Fact]
    public async Task ACallThatIsCancelledWhileWaitingIsDroppedAndOthersStillComplete()
    {
        // A separate service with a long batching window, so that rows are still waiting when their caller gives up.
        var settings = LevelServiceProcess.LevelOneSettings(maxBatchRows: 1000, startDelayMs: 1500, maxQueueRows: 1000);
        await using var slow = await LevelServiceProcess.StartAsync(settings);
        using var channel = GrpcChannel.ForAddress(slow.Address);
        var client = new GrpcLevelSampler.LevelSamplerClient(channel);
        int lines = slow.Output.Count;
        using var cancel = new CancellationTokenSource();
        var doomed = client.SamplePatchesAsync(TestModel.LevelOneMessage(5, seed: 1), cancellationToken: cancel.Token).ResponseAsync;
        await slow.WaitForLineAsync("queued 5 rows", lines, TimeSpan.FromSeconds(10));
        var kept = client.SamplePatchesAsync(TestModel.LevelOneMessage(7, seed: 2), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync;
        await slow.WaitForLineAsync("queued 7 rows", lines, TimeSpan.FromSeconds(10));
        cancel.Cancel();
        var error = await Assert.ThrowsAsync<RpcException>(() => doomed);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        Assert.Equal(7, (await kept).Patches.Count);
        var batch = await slow.WaitForLineAsync("sampling", lines, TimeSpan.FromSeconds(10));
        Assert.Contains("sampling 7 rows", batch);
        Assert.DoesNotContain(slow.Output.Skip(lines), l => l.Contains("sampling 5 rows"));
    }
}
