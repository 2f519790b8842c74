using System.Diagnostics;
using FractalMesh.Jobs;
using FractalMesh.Jobs.Tests;
using FractalMesh.Protos.Api;
using StackExchange.Redis;
using Xunit;
using Xunit.Abstractions;
using JobEvent = FractalMesh.Protos.Api.JobEvent;

namespace FractalMesh.Gateway.Tests;

/// <summary>One real redis-server and one gateway process using it, shared by <see cref="JobFaultTests"/> (which leave Redis running).</summary>
public sealed class RedisGatewayFixture : IAsyncLifetime
{
    public RedisServer Redis { get; } = new();
    public GatewayProcess Gateway { get; private set; } = null!;
    public ConnectionMultiplexer Multiplexer { get; private set; } = null!;
    public RedisKeys Keys { get; } = new("fm");

    public async Task InitializeAsync()
    {
        Multiplexer = Redis.Connect();
        Gateway = await GatewayProcess.StartAsync($"--Gateway:Redis={Redis.Endpoint}", "--Gateway:JobLeaseSeconds=3",
            "--Gateway:MaxImagesPerRequest=256", "--Gateway:ReplicaId=solo", "--Gateway:MaxQueuedJobs=2");
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        Multiplexer.Dispose();
        Redis.Dispose();
    }

    public IDatabase Db => Multiplexer.GetDatabase();
}

/// <summary>
/// Faults (c), (d) and (e) of the jobs fault table (gateway README) against a real gateway process and a real redis-server: Redis stopped mid-job,
/// cancellation of running and queued jobs, and a flood of malformed job requests.
/// </summary>
public sealed class JobFaultTests(RedisGatewayFixture fixture, ITestOutputHelper output) : IClassFixture<RedisGatewayFixture>
{
    GatewayProcess Gateway => fixture.Gateway;

    [Fact]
    public async Task RedisStoppedMidJobDegradesReadinessTheJobFinishesAndCheckpointingResumes()
    {
        var request = JobClient.Long(seed: 900, classes: 8, count: 32); // 256 images
        var job = await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = request });

        var reachedStep2 = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var timeline = new List<(string What, int Step)>();
        int lastStep = 0;
        var watch = Gateway.WatchAsync(job.Id, TimeSpan.FromSeconds(120), e =>
        {
            if (e.State != JobState.Running) return;
            Volatile.Write(ref lastStep, e.Step);
            if (e.Step >= 2) reachedStep2.TrySetResult(e.Step);
        });

        int stoppedAt = await reachedStep2.Task.WaitAsync(TimeSpan.FromSeconds(60));
        fixture.Redis.Stop();
        timeline.Add(("redis stopped", Volatile.Read(ref lastStep)));
        var toDegraded = await Gateway.WaitForReadinessAsync("Degraded", TimeSpan.FromSeconds(15));
        timeline.Add(($"readiness Degraded after {toDegraded.TotalSeconds:F1}s", Volatile.Read(ref lastStep)));
        fixture.Redis.Start();
        var toHealthy = await Gateway.WaitForReadinessAsync("Healthy", TimeSpan.FromSeconds(30));
        int recoveredAt = Volatile.Read(ref lastStep);
        timeline.Add(($"redis back, readiness Healthy after {toHealthy.TotalSeconds:F1}s", recoveredAt));

        var events = await watch;
        var done = events[^1];
        Assert.True(done.State == JobState.Done, $"{done}\n{Gateway.Log}");
        Assert.Equal(256, done.Images.Count);

        // The restarted Redis started empty (no persistence): whatever it holds now was written after it came back.
        var stream = await fixture.Db.StreamRangeAsync(fixture.Keys.Events(job.Id));
        int runningAfterReturn = stream.Count(entry => ((string?)entry["e"])?.Contains("\"status\":\"Running\"", StringComparison.Ordinal) == true);
        var checkpointStep = await fixture.Db.HashGetAsync(fixture.Keys.Checkpoint(job.Id), "step");
        string? record = await fixture.Db.StringGetAsync(fixture.Keys.Job(job.Id));
        output.WriteLine($"fault (c): 256-image job, {done.Steps} steps; " + string.Join("; ", timeline.Select(t => $"{t.What} (job at step {t.Step})")) +
            $"; job done; {runningAfterReturn} step events and checkpoint step {checkpointStep} written to Redis after it returned");
        Assert.True(stoppedAt < done.Steps, "the job had finished before Redis was stopped");
        Assert.True(runningAfterReturn > 0, $"no step was checkpointed to Redis after it came back (job at step {recoveredAt} of {done.Steps} then): make the job longer");
        Assert.Equal(done.Steps, (int)checkpointStep);
        Assert.Contains("\"status\":\"Done\"", record);

        // Spot-check the bytes: every image depends only on its own seed, so the first 16 alone must match.
        var head = request.Clone();
        head.ClassLabels.Clear();
        head.ClassLabels.Add(request.ClassLabels[0]);
        head.Count = 16;
        var expected = JobClient.ReferencePngs(head);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], done.Images[i].Png.ToByteArray());
    }

    [Fact]
    public async Task CancelStopsARunningJobWithinOneStepAndRemovesAQueuedOne()
    {
        await Gateway.WaitForReadinessAsync("Healthy", TimeSpan.FromSeconds(30));
        var running = await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = JobClient.Long(seed: 100, classes: 8, count: 16) });
        var queued = await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = JobClient.Long(seed: 200, classes: 8, count: 16) });
        var small = new GenerateRequest { ClassLabels = { 3 }, Seed = 7, Params = new SamplingParams { NumIter = { 4, 4 } } };
        var last = await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = small });

        var reachedStep2 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = Gateway.WatchAsync(running.Id, TimeSpan.FromSeconds(120), e =>
        {
            if (e.State == JobState.Running && e.Step >= 2) reachedStep2.TrySetResult();
        });
        await reachedStep2.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(JobState.Queued, (await Gateway.Jobs.GetJobAsync(new GetJobRequest { Id = last.Id })).State);
        Assert.Equal(2, (await Gateway.Jobs.GetJobAsync(new GetJobRequest { Id = last.Id })).QueuePosition);

        // The queue is bounded (Gateway:MaxQueuedJobs = 2 here): one more is refused at once, over gRPC and REST.
        var full = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = small }));
        Assert.Equal(Grpc.Core.StatusCode.ResourceExhausted, full.StatusCode);
        var (fullStatus, _) = await Gateway.PostRestAsync("/v1/jobs", Google.Protobuf.JsonFormatter.Default.Format(new SubmitJobRequest { Generate = small }));
        Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, fullStatus);

        // A queued job leaves the queue at once: the one behind it moves up.
        var cancelledQueued = await Gateway.Jobs.CancelJobAsync(new CancelJobRequest { Id = queued.Id });
        Assert.Equal(JobState.Cancelled, cancelledQueued.State);
        Assert.Equal(1, (await Gateway.Jobs.GetJobAsync(new GetJobRequest { Id = last.Id })).QueuePosition);

        // A running job stops within one level-0 step: at most the step in flight when the cancel arrived completes.
        long cancelSentMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var timer = Stopwatch.StartNew();
        var cancelled = await Gateway.Jobs.CancelJobAsync(new CancelJobRequest { Id = running.Id });
        var latency = timer.Elapsed;
        Assert.Equal(JobState.Cancelled, cancelled.State);
        var events = await watch;
        Assert.Equal(JobState.Cancelled, events[^1].State);
        int stepsAfterCancel = events.Count(e => e.State == JobState.Running && e.Step > 0 && EventMs(e) >= cancelSentMs);
        Assert.InRange(stepsAfterCancel, 0, 1);
        Assert.True(cancelled.Step < cancelled.Steps, $"the job ran to its last step ({cancelled.Step}/{cancelled.Steps}) before the cancel");

        // The slot is free: the job behind runs and finishes; nothing of the cancelled jobs stays queued, leased or active.
        var lastEvents = await Gateway.WatchAsync(last.Id, TimeSpan.FromSeconds(60));
        Assert.Equal(JobState.Done, lastEvents[^1].State);
        var queuedEvents = await Gateway.WatchAsync(queued.Id, TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(queuedEvents, e => e.State == JobState.Running);
        var active = (await fixture.Db.SortedSetRangeByRankAsync(fixture.Keys.Active)).Select(v => (string)v!).ToArray();
        Assert.DoesNotContain(running.Id, active);
        Assert.DoesNotContain(queued.Id, active);
        Assert.False(await fixture.Db.KeyExistsAsync(fixture.Keys.Lease(running.Id)));
        Assert.False(await fixture.Db.KeyExistsAsync(fixture.Keys.Lease(queued.Id)));
        var (_, readiness) = await Gateway.ReadinessAsync();
        Assert.Contains("\"queuedJobs\":0", readiness);
        Assert.Contains("\"runningJobs\":0", readiness);
        // Cancelling again (or a finished job) answers its state and changes nothing.
        Assert.Equal(JobState.Cancelled, (await Gateway.Jobs.CancelJobAsync(new CancelJobRequest { Id = running.Id })).State);
        Assert.Equal(JobState.Done, (await Gateway.Jobs.CancelJobAsync(new CancelJobRequest { Id = last.Id })).State);
        output.WriteLine($"fault (d): running job cancelled at step {cancelled.Step}/{cancelled.Steps}, {stepsAfterCancel} step(s) completed after the cancel " +
            $"was sent, CancelJob answered Cancelled in {latency.TotalMilliseconds:F0} ms; queued job cancelled without running; the next job then finished");
    }

    [Fact]
    public async Task AThousandMalformedJobRequestsAreRejectedCleanlyAndAGoodJobStillCompletes()
    {
        await Gateway.WaitForReadinessAsync("Healthy", TimeSpan.FromSeconds(30));
        var goodRequest = new GenerateRequest { ClassLabels = { 2, 5 }, Count = 2, Seed = 77, Params = new SamplingParams { Cfg = 2, NumIter = { 16, 8 } } };
        var good = await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = goodRequest, IdempotencyKey = "flood-good" });
        var server = fixture.Multiplexer.GetServers()[0];
        int jobsBefore = server.Keys(pattern: "fm:job:*").Count();

        var malformed = new MalformedJobRequests(Gateway, new Random(6));
        var outcomes = new Dictionary<string, int>();
        var timer = Stopwatch.StartNew();
        for (int i = 0; i < 1000; i++)
        {
            var c = malformed.Next(i);
            string outcome = await c.Send();
            Assert.True(MalformedJobRequests.IsClean(c, outcome), $"malformed request {i} ({c.Kind}) was answered {outcome}\n{Gateway.Log}");
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        var flood = timer.Elapsed;

        // Nothing else disturbed: no job was created, the good job (running through the flood) finishes with the same
        // bytes as a synchronous call, the same idempotency key still names it, and the gateway is alive and healthy.
        Assert.Equal(jobsBefore, server.Keys(pattern: "fm:job:*").Count());
        var events = await Gateway.WatchAsync(good.Id, TimeSpan.FromSeconds(60));
        var done = events[^1];
        Assert.Equal(JobState.Done, done.State);
        var direct = await Gateway.Grpc.GenerateAsync(goodRequest);
        Assert.Equal(direct.Images.Select(i => i.Png), done.Images.Select(i => i.Png));
        var again = await Gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = goodRequest, IdempotencyKey = "flood-good" });
        Assert.Equal(good.Id, again.Id);
        Assert.True(Gateway.IsRunning, Gateway.Log);
        await Gateway.WaitForReadinessAsync("Healthy", TimeSpan.FromSeconds(5));
        output.WriteLine($"fault (e): 1000 malformed job requests in {flood.TotalSeconds:F1}s, all rejected: " +
            string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key}×{o.Value}")) + "; the good job finished byte-identical to a synchronous call");
    }

    static long EventMs(JobEvent e) => EventIds.TryParse(e.EventId, out var id) ? id.Ms : long.MaxValue;
}
