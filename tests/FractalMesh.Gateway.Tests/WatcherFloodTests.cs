using System.Net;
using FractalMesh.Jobs.Tests;
using FractalMesh.Protos.Api;
using Grpc.Core;
using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// A flood of job watches against a real gateway process on a real redis-server, with <c>Gateway:MaxWatchers</c> at 3:
/// the watches past the cap are refused at once (RESOURCE_EXHAUSTED over gRPC, 429 over REST) while the three admitted
/// keep receiving every event to the end, and a place freed by a finished watch admits a new one.
/// </summary>
public sealed class WatcherFloodTests(ITestOutputHelper output)
{
    const int MaxWatchers = 3;

    [Fact]
    public async Task WatchesPastTheCapAreRefusedAndTheAdmittedOnesReceiveEveryEvent()
    {
        using var redis = new RedisServer();
        await using var gateway = await GatewayProcess.StartAsync($"--Gateway:Redis={redis.Endpoint}", $"--Gateway:MaxWatchers={MaxWatchers}",
            "--Gateway:MaxImagesPerRequest=128", "--Gateway:ReplicaId=solo");
        var request = JobClient.Long(seed: 1400, classes: 8, count: 8); // 64 images
        var job = await gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = request });

        // Three watches, each admitted before the next opens (a watch holds its place once its first event arrived).
        var admitted = new List<Task<List<JobEvent>>>();
        for (int i = 0; i < MaxWatchers; i++)
        {
            var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            admitted.Add(gateway.WatchAsync(job.Id, TimeSpan.FromSeconds(120), _ => first.TrySetResult()));
            await first.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        // The flood: every further watch is refused at once, over gRPC and REST, while the job runs.
        int refusedGrpc = 0;
        var floods = Enumerable.Range(0, 20).Select(async _ =>
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                await foreach (var e in gateway.Client.WatchJobAsync(job.Id)) { }
            });
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Contains("Gateway:MaxWatchers", refused.Status.Detail);
            Interlocked.Increment(ref refusedGrpc);
        });
        await Task.WhenAll(floods);
        using var rest = await gateway.Rest.GetAsync($"/v1/jobs/{job.Id}/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.TooManyRequests, rest.StatusCode);
        var running = await gateway.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id });
        Assert.NotEqual(JobState.Done, running.State); // the flood came while the job ran

        // The admitted watches were not disturbed: each saw every step in order and the images.
        var watched = await Task.WhenAll(admitted);
        foreach (var events in watched)
        {
            var done = events[^1];
            Assert.Equal(JobState.Done, done.State);
            Assert.Equal(64, done.Images.Count);
            var steps = events.Where(e => e.State == JobState.Running && e.Step > 0).Select(e => e.Step).ToList();
            Assert.Equal(Enumerable.Range(1, done.Steps), steps);
        }

        // Their places are free again: a new watch is admitted and replays the finished job.
        var replay = await gateway.WatchAsync(job.Id, TimeSpan.FromSeconds(30));
        Assert.Equal(JobState.Done, replay[^1].State);
        output.WriteLine($"{MaxWatchers} watches admitted and complete ({watched[0].Count} events each); {refusedGrpc} gRPC watches refused " +
            $"RESOURCE_EXHAUSTED and a REST watch 429 while the job was at step {running.Step} of {running.Steps}");
    }
}
