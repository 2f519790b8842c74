using System.Diagnostics;
using FractalMesh.Jobs.Tests;
using FractalMesh.Protos.Api;
using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// Fault (b) of the jobs fault table (gateway README): two gateway processes share one real redis-server; the one running a job is killed with SIGKILL
/// mid-job; the other takes the job over when the lease runs out, resumes it from the last level-0 checkpoint and
/// finishes it byte-identical to an uninterrupted run. The job is an inpainting job, so that resuming has to keep the
/// request's own known pixels apart from those generated before the failure.
/// </summary>
public sealed class JobTakeoverTests(ITestOutputHelper output)
{
    const double LeaseSeconds = 3;

    static string[] Settings(RedisServer redis, string replica) =>
    [
        $"--Gateway:Redis={redis.Endpoint}", $"--Gateway:JobLeaseSeconds={LeaseSeconds}", "--Gateway:MaxImagesPerRequest=128",
        $"--Gateway:ReplicaId={replica}",
    ];

    [Fact]
    public async Task AJobWhoseGatewayIsKilledIsFinishedByTheOtherReplicaByteIdentical()
    {
        using var redis = new RedisServer();
        // Both start at once (each loads the model and warms up); if one fails, the other is stopped too.
        var gateways = await StartTogether.AllAsync(GatewayProcess.StartAsync(Settings(redis, "g1")), GatewayProcess.StartAsync(Settings(redis, "g2")));
        await using var g1 = gateways[0];
        await using var g2 = gateways[1];

        var request = JobClient.LongInpaint(seed: 500, count: 128);
        var job = await g1.Jobs.SubmitJobAsync(new SubmitJobRequest { Inpaint = request });
        Assert.Equal("g1", job.Owner);

        // Watch through g2 (it serves the job's shared event stream) and kill g1 once it has checkpointed two steps.
        int killedAfter = -1;
        var sinceKill = new Stopwatch();
        TimeSpan? takeover = null;
        var events = await g2.WatchAsync(job.Id, TimeSpan.FromSeconds(120), e =>
        {
            if (killedAfter < 0 && e.State == JobState.Running && e.Owner == "g1" && e.Step >= 2)
            {
                g1.Kill();
                sinceKill.Start();
                killedAfter = e.Step;
            }
            if (takeover is null && killedAfter >= 0 && e.Owner == "g2") takeover = sinceKill.Elapsed;
        });

        Assert.True(killedAfter >= 2, "g1 was never seen past step 2: the job is too short to be interrupted");
        Assert.False(g1.IsRunning);
        var done = events[^1];
        Assert.True(done.State == JobState.Done, $"{done}\n{g2.Log}");
        Assert.Equal("g2", done.Owner);

        // Resumed, not restarted: g2's first running event is at the checkpoint g1 wrote before its last event (or the
        // one after, if g1 died between a checkpoint and its event); every completed step of g1 is kept.
        int lastOfG1 = events.Where(e => e.Owner == "g1" && e.State == JobState.Running).Max(e => e.Step);
        var ofG2 = events.Where(e => e.Owner == "g2" && e.State == JobState.Running).Select(e => e.Step).ToList();
        int resumedAt = ofG2[0];
        Assert.InRange(resumedAt, lastOfG1, lastOfG1 + 1);
        Assert.Equal(Enumerable.Range(resumedAt, done.Steps - resumedAt + 1), ofG2); // then one event per step, none repeated
        int recomputed = Math.Max(0, lastOfG1 - resumedAt);

        var final = await g2.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id });
        Assert.Equal(1, final.Resumptions);
        Assert.Equal(JobState.Done, final.State);

        var expected = JobClient.ReferencePngs(request);
        Assert.Equal(expected.Length, done.Images.Count);
        int identical = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(request.Seed + i, done.Images[i].Seed);
            if (expected[i].AsSpan().SequenceEqual(done.Images[i].Png.Span)) identical++;
        }
        output.WriteLine($"fault (b): gateway g1 killed (SIGKILL) after step {killedAfter}/{done.Steps}; g2 took over after {takeover?.TotalSeconds:F1}s " +
            $"(lease {LeaseSeconds}s), resumed at step {resumedAt}; completed steps recomputed {recomputed} (+ the step in flight); " +
            $"{identical}/{expected.Length} inpainted images byte-identical to an uninterrupted run");
        Assert.Equal(expected.Length, identical);
        Assert.Equal(0, recomputed);
    }
}
