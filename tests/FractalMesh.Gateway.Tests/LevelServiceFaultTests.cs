using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using FractalMesh.Jobs.Tests;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// Fault (a) of the jobs fault table (gateway README): a distributed gateway (level 0 in process, jobs in a real redis-server) runs 10 jobs one after
/// another against a level-1 service; during each job the level service is killed with SIGKILL at a random level-0 step
/// and started again on the same address. Every job must finish byte-identical to its uninterrupted twin (the in-process
/// sampler), resumed from the last checkpoint each time: no completed level-0 step is lost, so at most the step in flight
/// is computed again per failure. (When the service is back before the gateway's channel has used up its retries on
/// UNAVAILABLE, the call in flight is simply sent again and the job sees no interruption at all.)
/// </summary>
public sealed partial class LevelServiceFaultTests(ITestOutputHelper output)
{
    const int JobCount = 10;

    [GeneratedRegex(@"queued (\d+) rows")]
    private static partial Regex Queued();

    /// <summary>What one job went through: where the service was killed, where the job resumed, what it redid.</summary>
    sealed record Outcome(int Job, int KillAfterStep, int KilledAfterStep, IReadOnlyList<int> ResumedAt, int Interruptions, int CompletedStepsRedone,
        bool Identical);

    [Fact]
    public async Task KillingTheLevelServiceAtARandomStepOfTenJobsLosesNoCompletedStepAndChangesNoByte()
    {
        var total = Stopwatch.StartNew();
        long startMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        using var redis = new RedisServer();
        int port = TestPaths.FreePort(), metricsPort = TestPaths.FreePort();
        // Every call is held 300 ms before it starts: a level-0 step lasts at least that long, so the kill, sent when this
        // process sees step k ≤ 5's event, lands inside the job even when the events reach it a second late on a busy
        // machine (with 100 ms and k up to 6 a whole job once ended before the event of its step 5 arrived).
        var level1 = LevelServiceProcess.TinyModelSettings();
        level1["Level:StartDelayMilliseconds"] = "300";
        var incarnations = new List<LevelServiceProcess> { await LevelServiceProcess.StartAsync(level1, port) };
        LevelServiceProcess Current() { lock (incarnations) return incarnations[^1]; }
        try
        {
            await using var gateway = await GatewayProcess.StartAsync($"--Gateway:Redis={redis.Endpoint}", $"--Gateway:LevelAddresses:0={Current().Address}", "--Gateway:FirstRemoteLevel=1",
                "--Gateway:TorchThreads=1", "--Gateway:MaxImagesPerRequest=64", "--Gateway:ReplicaId=gw", "--Gateway:MaxQueuedJobs=16",
                $"--Observability:MetricsUrl=http://127.0.0.1:{metricsPort}/");

            // 10 jobs of 16 images with guidance, 10 level-0 steps each; the kill comes once step k ∈ [2, 5] is reported.
            var random = new Random(6);
            var requests = Enumerable.Range(0, JobCount).Select(j => new GenerateRequest
            {
                ClassLabels = { j % 10, (j + 3) % 10 }, Count = 8, Seed = 10_000 + 1_000 * j, Params = new SamplingParams { Cfg = 3, NumIter = { 10, 8 } },
            }).ToArray();
            var killAfter = requests.Select(_ => random.Next(2, 6)).ToArray();
            var ids = new List<string>();
            foreach (var request in requests) ids.Add((await gateway.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = request })).Id);

            // The uninterrupted twins, computed in this process while the jobs run (each image depends only on its seed).
            var twins = Task.Factory.StartNew(() => JobClient.Reference(requests.SelectMany(r =>
                r.ClassLabels.SelectMany(label => Enumerable.Repeat(label, r.Count)).Select((label, i) => new ImageRequest(label, r.Seed + i))).ToArray(), requests[0].Params),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            // Every job is watched from the start; its trigger kills whichever level service runs then. The jobs run one at a
            // time, so job j's trigger fires only after the service killed during job j-1 was started again.
            var killed = ids.Select(_ => new TaskCompletionSource<(int Step, int Incarnation, TimeSpan At)>(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
            var watches = ids.Select((id, j) => gateway.WatchAsync(id, TimeSpan.FromSeconds(150), e =>
            {
                if (e.State == JobState.Running && !e.PreviewPng.IsEmpty && e.Step >= killAfter[j] && !killed[j].Task.IsCompleted)
                {
                    var victim = Current();
                    victim.Kill();
                    killed[j].TrySetResult((e.Step, incarnations.IndexOf(victim), total.Elapsed));
                }
            })).ToArray();
            var restarts = new List<TimeSpan>();
            for (int j = 0; j < JobCount; j++)
            {
                await killed[j].Task.WaitAsync(TimeSpan.FromSeconds(120));
                var timer = Stopwatch.StartNew();
                var restarted = await LevelServiceProcess.StartAsync(level1, port);
                lock (incarnations) incarnations.Add(restarted);
                restarts.Add(timer.Elapsed);
            }
            var allEvents = await Task.WhenAll(watches);
            var expected = await twins;

            var outcomes = new List<Outcome>();
            for (int j = 0; j < JobCount; j++)
            {
                var events = allEvents[j];
                var done = events[^1];
                Assert.True(done.State == JobState.Done, $"job {j}: {done}\n{gateway.Log}");
                var job = await gateway.Jobs.GetJobAsync(new GetJobRequest { Id = ids[j] });
                int steps = done.Steps;

                // Completed steps: one event with a preview each, 1..steps, none repeated.
                var completed = events.Where(e => e.State == JobState.Running && !e.PreviewPng.IsEmpty).Select(e => e.Step).ToList();
                Assert.Equal(Enumerable.Range(1, steps), completed);

                // Resumptions: a running event without a preview after the first; each resumed at the last completed step.
                var running = events.Select((e, i) => (e, i)).Where(x => x.e.State == JobState.Running).ToList();
                var resumptions = running.Skip(1).Where(x => x.e.PreviewPng.IsEmpty).ToList();
                int redone = 0;
                foreach (var (e, i) in resumptions)
                {
                    int lastCompleted = events.Take(i).Where(p => p.State == JobState.Running && !p.PreviewPng.IsEmpty).Select(p => p.Step).DefaultIfEmpty(0).Max();
                    redone += lastCompleted - e.Step;
                    Assert.True(e.Step == lastCompleted, $"job {j} resumed at step {e.Step} although step {lastCompleted} was checkpointed");
                }
                // The fault hit this job: the service died after the job's first step and before its last.
                var (killStep, victim, at) = await killed[j].Task;
                long killMs = startMs + (long)at.TotalMilliseconds;
                long firstStepMs = events.Where(e => e.State == JobState.Running && !e.PreviewPng.IsEmpty).Select(EventMs).Min();
                Assert.True(killMs >= firstStepMs && killMs <= EventMs(done), $"job {j}: level service #{victim} was killed at {at.TotalSeconds:F1}s (after step {killStep}), " +
                    $"outside the job; its events: {string.Join("; ", events.Select(e => $"{e.State} {e.Step}{(e.PreviewPng.IsEmpty ? "" : " preview")} at {(EventMs(e) - startMs) / 1000.0:F1}s"))}");
                Assert.Equal(job.Interruptions, resumptions.Count);
                Assert.Equal(0, job.Resumptions);   // resumed by its own gateway, not taken over

                int offset = requests.Take(j).Sum(r => r.ClassLabels.Count * r.Count);
                var twin = expected.Skip(offset).Take(done.Images.Count).ToArray();
                bool identical = twin.Length == done.Images.Count && twin.Zip(done.Images).All(p => p.First.AsSpan().SequenceEqual(p.Second.Png.Span));
                outcomes.Add(new Outcome(j, killAfter[j], killStep, resumptions.Select(r => r.e.Step).ToList(), job.Interruptions, redone, identical));
            }

            // Calls that reached level 1 (every incarnation's log): one per level-0 step, plus at most the one in flight per kill.
            var calls = incarnations.SelectMany(s => s.Output).Count(l => Queued().IsMatch(l));
            int stepsInAll = allEvents.Sum(e => e[^1].Steps), recomputed = calls - stepsInAll;

            var metrics = await new HttpClient().GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
            double Metric(string name, string label) => metrics.Split('\n').Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && l.Contains(label, StringComparison.Ordinal))
                .Select(l => double.Parse(l.Split(' ')[1], CultureInfo.InvariantCulture)).Sum();

            output.WriteLine($"fault (a): {JobCount} jobs × {requests[0].ClassLabels.Count * requests[0].Count} images × {allEvents[0][^1].Steps} level-0 steps; " +
                $"level-1 service killed (SIGKILL) once per job and restarted on the same port (restart to readiness {restarts.Average(r => r.TotalSeconds):F1}s on average); {total.Elapsed.TotalSeconds:F0}s in all");
            output.WriteLine("job | kill once step k is reported | killed after step (seen) | resumed at | interruptions | completed steps redone | bytes identical");
            foreach (var o in outcomes)
                output.WriteLine($"{o.Job} | {o.KillAfterStep} | {o.KilledAfterStep} | {(o.ResumedAt.Count == 0 ? "- (the call was retried until the service was back)" : string.Join(",", o.ResumedAt))} | " +
                    $"{o.Interruptions} | {o.CompletedStepsRedone} | {o.Identical}");
            output.WriteLine($"level-1 calls: {calls} for {stepsInAll} level-0 steps: {recomputed} step(s) whose level-1 work was redone after {JobCount} kills (the call in flight)");
            output.WriteLine($"gateway metrics: jobs finished done={Metric("fractalmesh_gateway_jobs_finished_total", "\"done\"")}, " +
                $"resumptions interruption={Metric("fractalmesh_gateway_jobs_resumptions_total", "\"interruption\"")}");

            Assert.All(outcomes, o => Assert.True(o.Identical, $"job {o.Job} differs from its uninterrupted twin"));
            Assert.All(outcomes, o => Assert.Equal(0, o.CompletedStepsRedone));
            Assert.InRange(recomputed, 0, JobCount);   // at most one level-0 step recomputed per failure
            Assert.Equal(JobCount, Metric("fractalmesh_gateway_jobs_finished_total", "\"done\""));
            Assert.Equal(outcomes.Sum(o => o.Interruptions), Metric("fractalmesh_gateway_jobs_resumptions_total", "\"interruption\""));
        }
        finally
        {
            foreach (var service in incarnations) await service.DisposeAsync();
        }
    }

    static long EventMs(JobEvent e) => FractalMesh.Jobs.EventIds.TryParse(e.EventId, out var id) ? id.Ms : 0;
}
