using System.Net;
using System.Text.Json;
using FractalMesh.Imaging;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// The job API on the shared embedded gateway (in-memory job store): submit, watch with progress and previews, get and
/// cancel, over gRPC and REST (the events as newline-delimited JSON), and idempotency keys.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class JobApiTests(GatewayProcess gateway)
{
    static GenerateRequest Small(long seed) => new()
    {
        ClassLabels = { 3, 4 },
        Count = 2,
        Seed = seed,
        Params = new SamplingParams { Cfg = 2, NumIter = { 8, 4 } },
    };

    [Fact]
    public async Task AJobReportsEveryStepWithAPreviewAndFinishesWithTheSynchronousBytes()
    {
        var job = await gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = Small(40) });
        Assert.Matches("^[0-9a-f]{32}$", job.Id);
        Assert.Contains(job.State, new[] { JobState.Queued, JobState.Running });
        Assert.NotEmpty(job.Owner);

        var events = await gateway.WatchAsync(job.Id, TimeSpan.FromSeconds(60));
        Assert.Equal(JobState.Queued, events[0].State);
        Assert.True(events[0].QueuePosition >= 1);
        var steps = events.Where(e => e.State == JobState.Running && e.Step > 0).ToList();
        Assert.Equal(Enumerable.Range(1, 8), steps.Select(e => e.Step));          // one event per level-0 step
        Assert.All(steps, e => Assert.Equal(8, e.Steps));
        Assert.True(steps.Zip(steps.Skip(1)).All(p => p.First.DoneFraction < p.Second.DoneFraction));
        Assert.Equal(1.0, steps[^1].DoneFraction);
        foreach (var e in steps)
        {
            var (_, w, h) = PngImage.Decode(e.PreviewPng.ToByteArray(), "preview");
            Assert.Equal((35, 35), (w, h));                                          // 4 images of 16×16 in a 2×2 grid with gutters
        }
        var done = events[^1];
        Assert.Equal(JobState.Done, done.State);
        var direct = await gateway.Grpc.GenerateAsync(Small(40));
        Assert.Equal(direct.Images, done.Images);                                     // PNG bytes, seeds and classes

        var got = await gateway.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id });
        Assert.Equal(JobState.Done, got.State);
        Assert.Equal(direct.Images, got.Images);
        Assert.Equal(8, got.Step);
        // Watching again replays the stream; resuming after an event replays only what followed it.
        var later = await gateway.WatchAsync(job.Id, TimeSpan.FromSeconds(10));
        Assert.Equal(events.Select(e => e.EventId), later.Select(e => e.EventId));
        using var call = gateway.Jobs.WatchJob(new WatchJobRequest { Id = job.Id, AfterEventId = events[^2].EventId });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(done.EventId, call.ResponseStream.Current.EventId);
    }

    [Fact]
    public async Task OverRestJobsAreSubmittedWatchedAsJsonLinesAndRepeatedSubmitsWithAKeyGiveTheSameJob()
    {
        string body = """{ "generate": { "classLabels": [5], "count": 2, "seed": "70", "params": { "numIter": [4, 2] } }, "idempotencyKey": "rest-key-1" }""";
        var (status, first) = await gateway.PostRestAsync("/v1/jobs", body);
        Assert.True(status == HttpStatusCode.OK, first);
        var job = JsonParser.Default.Parse<Job>(first);
        var (_, second) = await gateway.PostRestAsync("/v1/jobs", body);
        Assert.Equal(job.Id, JsonParser.Default.Parse<Job>(second).Id);

        // The same key with another request is refused rather than silently answered with the first job.
        var (conflict, error) = await gateway.PostRestAsync("/v1/jobs", body.Replace("\"70\"", "\"71\""));
        Assert.True(conflict == HttpStatusCode.BadRequest, $"{conflict}: {error}");
        Assert.Equal((int)StatusCode.FailedPrecondition, JsonDocument.Parse(error).RootElement.GetProperty("code").GetInt32());

        using var events = await gateway.Rest.GetAsync($"/v1/jobs/{job.Id}/events");
        Assert.Equal(HttpStatusCode.OK, events.StatusCode);
        var lines = (await events.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var parsed = lines.Select(line => JsonParser.Default.Parse<JobEvent>(line)).ToList();
        Assert.Equal(JobState.Queued, parsed[0].State);
        Assert.Equal(JobState.Done, parsed[^1].State);
        Assert.Equal(2, parsed[^1].Images.Count);
        Assert.Equal([70L, 71L], parsed[^1].Images.Select(i => i.Seed));

        using var get = await gateway.Rest.GetAsync($"/v1/jobs/{job.Id}");
        var fetched = JsonParser.Default.Parse<Job>(await get.Content.ReadAsStringAsync());
        Assert.Equal(JobState.Done, fetched.State);
        Assert.Equal(parsed[^1].Images, fetched.Images);

        // Cancelling a finished job changes nothing; unknown and malformed ids are 404 and 400.
        using var delete = await gateway.Rest.DeleteAsync($"/v1/jobs/{job.Id}");
        Assert.Equal(JobState.Done, JsonParser.Default.Parse<Job>(await delete.Content.ReadAsStringAsync()).State);
        using var unknown = await gateway.Rest.GetAsync($"/v1/jobs/{new string('0', 32)}");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using var malformed = await gateway.Rest.GetAsync("/v1/jobs/NOT-AN-ID/events");
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
    }

    [Fact]
    public async Task AnInvalidJobSpecNamesTheFieldInsideTheSpec()
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await gateway.Jobs.SubmitJobAsync(new SubmitJobRequest
        {
            Inpaint = new InpaintRequest { ClassLabel = 12, Params = new SamplingParams { Cfg = 99 } },
        }));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        var fields = GatewayClient.ViolatedFields(e);
        Assert.Contains("inpaint.class_label", fields);
        Assert.Contains("inpaint.params.cfg", fields);
        Assert.Contains("inpaint.image_png", fields);
        var none = await Assert.ThrowsAsync<RpcException>(async () => await gateway.Jobs.SubmitJobAsync(new SubmitJobRequest()));
        Assert.Equal(["spec"], GatewayClient.ViolatedFields(none));
    }
}
