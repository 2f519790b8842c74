using FractalMesh.Jobs;
using FractalMesh.Jobs.Tests;
using FractalMesh.Protos.Api;
using StackExchange.Redis;
using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// Redis restarted from its append-only file while a job runs, as compose and Kubernetes run it (AOF on a volume): the
/// job's record, checkpoint and events survive the restart, so even the replica that ran the job can die while Redis
/// is away and another replica still finishes the job from its checkpoint, byte-identical to an uninterrupted run.
/// Without persistence the same double failure loses the job (a restarted empty Redis knows nothing of it).
/// </summary>
public sealed class RedisRestartTests(ITestOutputHelper output)
{
    static string[] Settings(RedisServer redis, string replica) =>
    [
        $"--Gateway:Redis={redis.Endpoint}", "--Gateway:JobLeaseSeconds=3", "--Gateway:MaxImagesPerRequest=128",
        $"--Gateway:ReplicaId={replica}",
    ];

    [Fact]
    public async Task RedisKilledAndRestartedFromItsAofWhileAJobRunsKeepsTheJobAndItFinishesByteIdentical()
    {
        // appendfsync always: every acknowledged write is on disk before the kill, so what the test expects back is exact.
        using var redis = RedisServer.Started("--appendonly yes --appendfsync always");
        var gateways = await StartTogether.AllAsync(GatewayProcess.StartAsync(Settings(redis, "g1")), GatewayProcess.StartAsync(Settings(redis, "g2")));
        await using var g1 = gateways[0];
        await using var g2 = gateways[1];
        var keys = new RedisKeys("fm");

        var request = JobClient.Long(seed: 1300, classes: 8, count: 16); // 128 images
        var job = await g1.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = request });
        Assert.Equal("g1", job.Owner);

        // Once g1 has checkpointed two steps: Redis is killed (SIGKILL), then g1 while Redis is away, so the only copy of
        // the job's progress is what Redis wrote to its AOF before it died.
        var reachedStep2 = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stopWatching = new CancellationTokenSource();
        var watching = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in g1.Client.WatchJobAsync(job.Id, cancel: stopWatching.Token))
                    if (e.State == JobState.Running && e.Step >= 2) { reachedStep2.TrySetResult(e.Step); return; }
            }
            catch (Exception) when (stopWatching.IsCancellationRequested) { }
        });
        int seenStep = await reachedStep2.Task.WaitAsync(TimeSpan.FromSeconds(90));
        await stopWatching.CancelAsync();

        redis.Stop();
        g1.Kill();
        redis.Start();

        // What Redis read back from its AOF, before any gateway could write again (g1 is dead; g2 adopts the job only
        // after g1's lease runs out, and adopting keeps the checkpoint).
        using (var mux = redis.Connect())
        {
            var db = mux.GetDatabase();
            string? record = await db.StringGetAsync(keys.Job(job.Id));
            Assert.NotNull(record);
            int checkpointStep = (int)await db.HashGetAsync(keys.Checkpoint(job.Id), "step");
            Assert.True(checkpointStep >= seenStep, $"the checkpoint after the restart is at step {checkpointStep}, before the step {seenStep} an event reported");
            var eventsBefore = await db.StreamRangeAsync(keys.Events(job.Id));
            Assert.Contains(eventsBefore, e => ((string?)e["e"])?.Contains("\"status\":\"Queued\"", StringComparison.Ordinal) == true);
            output.WriteLine($"after the restart Redis holds the job's record, its checkpoint at step {checkpointStep} and {eventsBefore.Length} events");
        }

        await g2.WaitForReadinessAsync("Healthy", TimeSpan.FromSeconds(30));
        var events = await g2.WatchAsync(job.Id, TimeSpan.FromSeconds(180));
        var done = events[^1];
        Assert.True(done.State == JobState.Done, $"{done}\n{g2.Log}");
        Assert.Equal("g2", done.Owner);
        var ofG2 = events.Where(e => e.Owner == "g2" && e.State == JobState.Running && e.Step > 0).Select(e => e.Step).ToList();
        Assert.NotEmpty(ofG2);
        Assert.True(ofG2[0] >= seenStep, $"g2 resumed at step {ofG2[0]}, before the step {seenStep} g1 had checkpointed: work was lost");

        var final = await g2.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id });
        Assert.Equal(1, final.Resumptions);
        var expected = JobClient.ReferencePngs(request);
        Assert.Equal(expected.Length, done.Images.Count);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], done.Images[i].Png.ToByteArray());
        output.WriteLine($"Redis and g1 killed after step {seenStep} of {done.Steps}; g2 resumed at step {ofG2[0]}; " +
            $"{expected.Length} images byte-identical to an uninterrupted run");
        await watching;
    }
}
