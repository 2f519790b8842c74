using FractalMesh.Imaging;
using FractalMesh.Gateway.Jobs;
using FractalMesh.Gateway.Validation;
using FractalMesh.Jobs;
using FractalMesh.Protos.Api;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Xunit;

namespace FractalMesh.Gateway.UnitTests;

public sealed class ImageJobExecutorUnitTests
{
    readonly FakeGenerator generator = new();
    readonly ImageJobExecutor executor;

    public ImageJobExecutorUnitTests() =>
        executor = new ImageJobExecutor(new RequestValidator(generator, Options.Create(new GatewayOptions())), generator);

    static JobRecord Record(SubmitJobRequest request) => new() { Id = new string('a', 32), RequestJson = ImageJobExecutor.Serialize(request) };

    static SubmitJobRequest Generate(int count) => new()
    {
        Generate = new GenerateRequest { ClassLabels = { 4 }, Count = count, Seed = 100 },
        IdempotencyKey = "key-1",
    };

    [Fact]
    public void TheStoredFormIsTheSpecWithoutTheIdempotencyKey()
    {
        var json = ImageJobExecutor.Serialize(Generate(2));
        Assert.DoesNotContain("key-1", json);
        Assert.Equal(Generate(2).Generate, ImageJobExecutor.Parse(json).Generate);
    }

    [Fact]
    public async Task RunsTheJobReportingEveryStepAndReturnsOnePngPerImageWithItsSeedAndClass()
    {
        var reports = new List<JobStepReport>();
        var images = await executor.RunAsync(Record(Generate(2)), null, r => { reports.Add(r); return ValueTask.CompletedTask; }, CancellationToken.None);

        Assert.Equal([1, 2, 3, 4], reports.Select(r => r.Checkpoint.Step));
        Assert.Equal([0.25, 0.5, 0.75, 1.0], reports.Select(r => r.DoneFraction));
        Assert.All(reports, r => Assert.Equal(4, r.Steps));
        Assert.All(reports, r => Assert.NotNull(r.PreviewPng));
        Assert.Equal([100L, 101L], images.Select(i => i.Seed));
        Assert.Equal([4, 4], images.Select(i => i.Label));
        var (pixels, w, h) = PngImage.Decode(images[1].Png, "image");
        Assert.Equal((16, 16), (w, h));
        Assert.All(pixels, p => Assert.Equal(1, p));   // the fake paints image i with i
    }

    [Fact]
    public async Task ResumesAtTheCheckpointsStepWithItsPixelsKnownAndTheOriginalMaskKept()
    {
        int plane = 16 * 16;
        var checkpoint = new JobCheckpoint(2, Enumerable.Repeat((byte)7, 2 * 3 * plane).ToArray(), Enumerable.Range(0, 2 * plane).Select(i => i % plane < plane / 2).ToArray());
        await executor.RunAsync(Record(Generate(2)), checkpoint, _ => ValueTask.CompletedTask, CancellationToken.None);

        var run = Assert.Single(generator.Jobs);
        Assert.Equal(2, run.StartStep);
        Assert.All(run.Images, image =>
        {
            Assert.Equal(Enumerable.Repeat((byte)7, 3 * plane), image.KnownPixels!);
            Assert.Equal(plane / 2, image.KnownMask!.Count(k => k));
            Assert.Equal(new bool[plane], image.OriginalKnownMask);   // a generate request knows no pixel of its own
        });
    }

    [Fact]
    public async Task ACheckpointOfAnotherShapeStartsOver()
    {
        var checkpoint = new JobCheckpoint(2, new byte[10], new bool[10]);
        await executor.RunAsync(Record(Generate(1)), checkpoint, _ => ValueTask.CompletedTask, CancellationToken.None);
        Assert.Equal(0, Assert.Single(generator.Jobs).StartStep);
    }

    [Theory]
    [InlineData(StatusCode.Unavailable)]
    [InlineData(StatusCode.DeadlineExceeded)]
    [InlineData(StatusCode.ResourceExhausted)]
    public async Task ATransientFailureBelowInterruptsTheJobForResumption(StatusCode status)
    {
        generator.Failure = new RpcException(new Status(status, "level 1 restarting"));
        var e = await Assert.ThrowsAsync<JobInterruptedException>(() => executor.RunAsync(Record(Generate(1)), null, _ => ValueTask.CompletedTask, CancellationToken.None));
        Assert.Contains(status.ToString(), e.Message);
    }

    [Fact]
    public async Task AStoredRequestTheModelNoLongerAcceptsFailsNamingTheField()
    {
        var request = new SubmitJobRequest { Generate = new GenerateRequest { ClassLabels = { 12 } } };
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => executor.RunAsync(Record(request), null, _ => ValueTask.CompletedTask, CancellationToken.None));
        Assert.Contains("generate.class_labels[0]", e.Message);
        Assert.Empty(generator.Jobs);
    }
}
