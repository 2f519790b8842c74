using Microsoft.Extensions.Time.Testing;
using System.Collections.Concurrent;
using Xunit;

namespace FractalMesh.Jobs.Tests;

/// <summary>
/// The runner's queue, checkpoints, cancellation, takeover and lease loss, on the in-memory store with an executor that
/// takes a few quick steps (the real sampler and real processes are in the gateway's fault tests).
/// </summary>
public sealed class JobRunnerUnitTests
{
    /// <summary>Takes <see cref="Steps"/> steps of <see cref="StepDelay"/>, each reported with a checkpoint holding the step number.</summary>
    sealed class StepExecutor : IJobExecutor
    {
        public int Steps { get; init; } = 4;
        public TimeSpan StepDelay { get; init; } = TimeSpan.FromMilliseconds(10);
        public ConcurrentQueue<(string Id, int? ResumedAt)> Started { get; } = new();
        public ConcurrentDictionary<string, int> LastStep { get; } = new();
        /// <summary>Steps at which the run is cut short once, as a level service dying would (after the step's work, before its report).</summary>
        public HashSet<int> InterruptAt { get; init; } = [];

        public async Task<IReadOnlyList<JobImage>> RunAsync(JobRecord job, JobCheckpoint? resumeFrom, Func<JobStepReport, ValueTask> onStep, CancellationToken cancel)
        {
            Started.Enqueue((job.Id, resumeFrom?.Step));
            for (int step = (resumeFrom?.Step ?? 0) + 1; step <= Steps; step++)
            {
                cancel.ThrowIfCancellationRequested();
                await Task.Delay(StepDelay, CancellationToken.None);
                lock (InterruptAt)
                    if (InterruptAt.Remove(step)) throw new JobInterruptedException($"level 1 unavailable during step {step}");
                LastStep[job.Id] = step;
                await onStep(new JobStepReport(new JobCheckpoint(step, [(byte)step], [true]), Steps, (double)step / Steps, [1, 2, 3]));
            }
            return [new JobImage([42], 7, 1)];
        }
    }

    static JobRunnerOptions Options(string owner = "r1") => new()
    {
        Owner = owner, LeaseTtl = TimeSpan.FromSeconds(1), OrphanScanInterval = TimeSpan.FromMilliseconds(50), MaxQueued = 3,
    };

    static async Task<JobRecord> WaitFinishedAsync(IJobStore store, string id)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (await store.GetAsync(id) is { IsFinished: true } job) return job;
            await Task.Delay(10);
        }
        throw new TimeoutException($"job {id} did not finish");
    }

    /// <summary>
    /// Moves <paramref name="clock"/> on by <paramref name="tick"/> until job <paramref name="id"/> finished (the runner's timers
    /// and the store's leases run on it); returns the job and the time that passed on the clock.
    /// </summary>
    static async Task<(JobRecord Job, TimeSpan Elapsed)> AdvanceUntilFinishedAsync(FakeTimeProvider clock, IJobStore store, string id, TimeSpan tick)
    {
        var start = clock.GetUtcNow();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (await store.GetAsync(id) is { IsFinished: true } job) return (job, clock.GetUtcNow() - start);
            clock.Advance(tick);
            await Task.Delay(2);          // let the continuations the tick released run (real time: no timer of the runner's)
        }
        throw new TimeoutException($"job {id} did not finish");
    }

    [Fact]
    public async Task JobsRunInSubmitOrderWithACheckpointAndAnEventAfterEveryStep()
    {
        var store = new InMemoryJobStore();
        var executor = new StepExecutor();
        await using var runner = new JobRunner(store, executor, Options());
        runner.Start();
        var ids = new List<string>();
        for (int i = 0; i < 3; i++) ids.Add((await runner.SubmitAsync($"{{\"n\":{i}}}", 4, null)).Job.Id);
        foreach (var id in ids) Assert.Equal(JobStatus.Done, (await WaitFinishedAsync(store, id)).Status);

        Assert.Equal(ids, executor.Started.Select(s => s.Id));
        var events = await store.ReadEventsAsync(ids[2], null, TimeSpan.Zero);
        Assert.Equal(JobStatus.Queued, events[0].Status);
        Assert.True(events[0].QueuePosition >= 1);
        var running = events.Where(e => e.Status == JobStatus.Running).Select(e => e.Step).ToList();
        Assert.Equal([0, 1, 2, 3, 4], running);
        Assert.Equal(JobStatus.Done, events[^1].Status);
        Assert.Equal("r1", events[^1].Owner);
        Assert.Equal(4, (await store.LoadCheckpointAsync(ids[2]))!.Step);
        var done = (await store.GetAsync(ids[2]))!;
        Assert.Equal((4, 4, 1.0), (done.Step, done.Steps, done.DoneFraction));
        Assert.Equal(7, Assert.Single(done.Images).Seed);
        Assert.Empty(await store.ActiveJobsAsync());
    }

    [Fact]
    public async Task CancelEmptiesAQueuedJobAtOnceAndStopsARunningOneWithinAStep()
    {
        var store = new InMemoryJobStore();
        var executor = new StepExecutor { Steps = 100, StepDelay = TimeSpan.FromMilliseconds(30) };
        await using var runner = new JobRunner(store, executor, Options());
        runner.Start();
        var running = (await runner.SubmitAsync("{}", 100, null)).Job.Id;
        var waiting = (await runner.SubmitAsync("{}", 100, null)).Job.Id;
        while (!executor.LastStep.ContainsKey(running)) await Task.Delay(5);
        Assert.Equal(1, runner.QueuePosition(waiting));

        var cancelledWaiting = await runner.CancelAsync(waiting, TimeSpan.FromSeconds(5));
        Assert.Equal(JobStatus.Cancelled, cancelledWaiting!.Status);
        Assert.Null(runner.QueuePosition(waiting));
        Assert.Equal(0, runner.QueuedCount);

        int stepAtCancel = executor.LastStep[running];
        var cancelled = await runner.CancelAsync(running, TimeSpan.FromSeconds(5));
        Assert.Equal(JobStatus.Cancelled, cancelled!.Status);
        Assert.InRange(executor.LastStep[running], stepAtCancel, stepAtCancel + 1);
        Assert.DoesNotContain(executor.Started, s => s.Id == waiting);
        Assert.Equal(0, runner.RunningCount);
        Assert.Empty(await store.ActiveJobsAsync());
        Assert.Null(await runner.CancelAsync(new string('0', 32), TimeSpan.Zero));
    }

    [Fact]
    public async Task AnIdempotencyKeyReturnsTheSameJobAndAFullQueueRefuses()
    {
        var store = new InMemoryJobStore();
        var executor = new StepExecutor { Steps = 100, StepDelay = TimeSpan.FromMilliseconds(50) };
        await using var runner = new JobRunner(store, executor, Options());
        runner.Start();
        var (first, created) = await runner.SubmitAsync("{}", 100, "key");
        var (again, createdAgain) = await runner.SubmitAsync("{}", 100, "key");
        Assert.True(created);
        Assert.False(createdAgain);
        Assert.Equal(first.Id, again.Id);
        while (runner.RunningCount == 0) await Task.Delay(5);
        for (int i = 0; i < 3; i++) await runner.SubmitAsync("{}", 100, null);
        await Assert.ThrowsAsync<JobQueueFullException>(() => runner.SubmitAsync("{}", 100, null));
    }

    [Fact]
    public async Task AnOrphanedJobIsTakenOverAndResumedFromItsCheckpoint()
    {
        // A job left running by a replica that died: its record, its step-3 checkpoint, and no lease.
        var clock = new FakeTimeProvider();
        var store = new InMemoryJobStore(clock);
        var now = clock.GetUtcNow();
        await store.CreateAsync(new JobRecord { Id = "orphan", RequestJson = "{}", Status = JobStatus.Running, Step = 3, Steps = 6, Owner = "dead", CreatedAt = now, UpdatedAt = now }, null);
        await store.SaveCheckpointAsync("orphan", new JobCheckpoint(3, [3], [true]));
        var executor = new StepExecutor { Steps = 6 };
        await using var runner = new JobRunner(store, executor, Options("heir"), time: clock);
        runner.Start();

        // Nothing happens until the scan's interval has passed on the runner's clock; then the idle replica adopts it.
        await Task.Delay(100);
        Assert.Empty(executor.Started);
        var (done, elapsed) = await AdvanceUntilFinishedAsync(clock, store, "orphan", TimeSpan.FromMilliseconds(10));
        Assert.True(elapsed >= Options().OrphanScanInterval, $"adopted after {elapsed.TotalMilliseconds} ms of the clock, before one scan interval");
        Assert.Equal(JobStatus.Done, done.Status);
        Assert.Equal(("orphan", (int?)3), Assert.Single(executor.Started));
        Assert.Equal(1, done.Resumptions);
        Assert.Equal("heir", done.Owner);
        var steps = (await store.ReadEventsAsync("orphan", null, TimeSpan.Zero)).Where(e => e.Status == JobStatus.Running).Select(e => e.Step);
        Assert.Equal([3, 4, 5, 6], steps); // resumed at 3: nothing before it recomputed
    }

    [Fact]
    public async Task AReplicaThatLosesTheLeaseStopsWithoutWriting()
    {
        var store = new InMemoryJobStore();
        var executor = new StepExecutor { Steps = 1000, StepDelay = TimeSpan.FromMilliseconds(20) };
        await using var runner = new JobRunner(store, executor, Options());
        runner.Start();
        var id = (await runner.SubmitAsync("{}", 1000, null)).Job.Id;
        while (!executor.LastStep.ContainsKey(id)) await Task.Delay(5);

        // Another replica holds the lease now (as after a pause longer than the lease): this one must stop and stay quiet.
        // The runner's heartbeat may re-take a lease released a moment ago, so the thief tries until it holds it.
        bool stolen = false;
        for (var until = DateTime.UtcNow + TimeSpan.FromSeconds(5); !stolen && DateTime.UtcNow < until;)
        {
            await store.ReleaseLeaseAsync(id, "r1");
            stolen = await store.TryLeaseAsync(id, "thief", TimeSpan.FromMinutes(1));
        }
        Assert.True(stolen);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (runner.RunningCount > 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Equal(0, runner.RunningCount);
        int stopped = executor.LastStep[id];
        await Task.Delay(100);
        Assert.Equal(stopped, executor.LastStep[id]);
        var record = (await store.GetAsync(id))!;
        Assert.Equal(JobStatus.Running, record.Status);   // not cancelled, failed or done: the thief owns it
        Assert.False(await store.TryLeaseAsync(id, "r1", TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task AnInterruptedRunResumesFromItsLastCheckpointRecomputingOnlyTheStepInFlight()
    {
        var clock = new FakeTimeProvider();
        var store = new InMemoryJobStore(clock);
        var executor = new StepExecutor { Steps = 8, InterruptAt = [3, 6, 7] };
        await using var runner = new JobRunner(store, executor, Options(), time: clock);
        runner.Start();
        var id = (await runner.SubmitAsync("{}", 8, null)).Job.Id;
        var (done, elapsed) = await AdvanceUntilFinishedAsync(clock, store, id, TimeSpan.FromMilliseconds(50));

        // Each interruption came after progress, so each resume waited the first back-off step on the runner's clock.
        var pauses = 3 * JobExecution.BackOff(1);
        Assert.True(elapsed >= pauses, $"finished after {elapsed.TotalMilliseconds} ms of the clock, less than the {pauses.TotalMilliseconds} ms of back-off");

        Assert.Equal(JobStatus.Done, done.Status);
        Assert.Equal(3, done.Interruptions);
        Assert.Equal([null, 2, 5, 6], executor.Started.Select(s => s.ResumedAt));   // each run starts at the last checkpoint
        var completed = (await store.ReadEventsAsync(id, null, TimeSpan.Zero))
            .Where(e => e.Status == JobStatus.Running).Select(e => e.Step).ToList();
        // Every step completes once (the restart events repeat the step reached, they complete nothing).
        Assert.Equal([0, 1, 2, 2, 3, 4, 5, 5, 6, 6, 7, 8], completed);
    }

    [Fact]
    public async Task ARunInterruptedAgainAndAgainWithoutProgressFails()
    {
        var store = new InMemoryJobStore();
        var executor = new StepExecutor { Steps = 4, InterruptAt = [1] };
        var options = Options() with { MaxInterruptionsWithoutProgress = 0 };
        await using var runner = new JobRunner(store, executor, options);
        runner.Start();
        var id = (await runner.SubmitAsync("{}", 4, null)).Job.Id;
        var failed = await WaitFinishedAsync(store, id);
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Contains("level 1 unavailable", failed.Error);
    }

    [Theory]
    [InlineData("5-0", null, true)]
    [InlineData("5-10", "5-9", true)]    // numeric, not ordinal: 10 > 9
    [InlineData("10-0", "9-99", true)]
    [InlineData("5-1", "5-1", false)]
    [InlineData("4-7", "5-0", false)]
    [InlineData("x", "5-0", false)]
    public void EventIdsCompareAsRedisStreamIds(string id, string? after, bool isAfter) =>
        Assert.Equal(isAfter, EventIds.IsAfter(id, after));
}
