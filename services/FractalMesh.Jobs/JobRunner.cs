using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FractalMesh.Jobs;

/// <summary>
/// Runs jobs on one replica (docs/ARCHITECTURE.md, State in Redis): a FIFO queue of the jobs submitted here, <see cref="JobRunnerOptions.MaxRunning"/>
/// workers, a checkpoint, record update and event after every level-0 step, an owner lease on every queued or running
/// job renewed by a heartbeat, cancellation that empties the job from the queue or stops its run within one step, and
/// takeover of orphaned jobs (their owner's lease ran out) by an idle replica, resumed from their last checkpoint.
/// </summary>
/// <remarks>
/// Ownership: the replica holding a job's lease is the only one that runs it. The lease is taken before a new job is
/// visible, renewed every <see cref="JobRunnerOptions.Heartbeat"/> and before every checkpoint; a replica that finds the
/// lease taken by another stops its copy without writing; every record and checkpoint write of a job is checked against
/// its lease by the store in the same atomic step (<see cref="IJobStore.SaveOwnedAsync"/>), so a replica that lost the
/// lease between its renewal and its write is refused, and stops. While Redis is away the store cannot arbitrate, so every
/// replica keeps its own jobs and none takes another's over.
/// <para>
/// This class is the façade and the queue's workers; the duties live apart: <see cref="OwnedJobs"/> (the jobs held here and
/// their queue order), <see cref="JobExecution"/> (one job's run: checkpoints under the lease, resumes, the final state) and
/// <see cref="LeaseKeeper"/> (heartbeat, cancel flags from elsewhere, orphan adoption).
/// </para>
/// </remarks>
public sealed class JobRunner : IAsyncDisposable
{
    readonly IJobStore store;
    readonly JobRunnerOptions options;
    readonly ILogger logger;
    readonly TimeProvider time;
    readonly OwnedJobs jobs = new();
    readonly JobCounters counters = new();
    readonly JobExecution execution;
    readonly LeaseKeeper leases;
    readonly SemaphoreSlim work = new(0);
    readonly SemaphoreSlim queueEvents = new(1, 1);      // queued events leave in queue order
    readonly CancellationTokenSource shutdown = new();
    Task[] loops = [];

    public JobRunner(IJobStore store, IJobExecutor executor, JobRunnerOptions options, ILogger<JobRunner>? logger = null, TimeProvider? time = null)
    {
        if (options.LeaseTtl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "LeaseTtl must be positive");
        if (options.MaxRunning < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxRunning must be at least 1");
        this.store = store;
        this.options = options;
        this.logger = logger ?? NullLogger<JobRunner>.Instance;
        this.time = time ?? TimeProvider.System;
        execution = new JobExecution(store, executor, options, this.time, this.logger, counters);
        leases = new LeaseKeeper(store, jobs, options, this.time, this.logger, counters,
            cancelWaiting: id => CancelAsync(id, TimeSpan.Zero), enqueue: EnqueueAsync);
    }

    /// <summary>This replica's name in leases, records and events.</summary>
    public string Owner => options.Owner;

    public int QueuedCount => jobs.QueuedCount;
    public int RunningCount => jobs.RunningCount;

    /// <summary>What this replica did since it started: jobs finished by state, jobs taken over, runs resumed after an interruption.</summary>
    public JobRunnerCounts Counts => counters.Read();

    /// <summary>1 for the next job to start here, 2 after it…; null when the job is not waiting on this replica.</summary>
    public int? QueuePosition(string id) => jobs.QueuePosition(id);

    /// <summary>Starts the workers, the heartbeat and the orphan scan.</summary>
    public void Start()
    {
        loops =
        [
            .. Enumerable.Range(0, options.MaxRunning).Select(_ => Task.Run(WorkerLoopAsync)),
            Task.Run(() => leases.HeartbeatLoopAsync(shutdown.Token)),
            Task.Run(() => leases.ScanLoopAsync(shutdown.Token)),
        ];
    }

    /// <summary>
    /// Stops: running jobs are interrupted (their checkpoints stay) and every lease is released, so another replica
    /// resumes them at once instead of after the lease runs out.
    /// </summary>
    public async Task StopAsync()
    {
        if (shutdown.IsCancellationRequested) return;
        shutdown.Cancel();
        foreach (var job in jobs.Snapshot()) job.Cancel(StopReason.Shutdown);
        try { await Task.WhenAll(loops); }
        catch (OperationCanceledException) { }
        foreach (var job in jobs.Clear()) await execution.SafeAsync(() => execution.ReleaseAsync(job));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        shutdown.Dispose();
    }

    /// <summary>
    /// Queues a new job here and returns it at once; with an <paramref name="idempotencyKey"/> that already names a job,
    /// returns that job instead (Created false). Throws <see cref="JobQueueFullException"/> when the queue is full.
    /// </summary>
    public async Task<(JobRecord Job, bool Created)> SubmitAsync(string requestJson, int steps, string? idempotencyKey, CancellationToken cancel = default)
    {
        if (jobs.QueuedCount >= options.MaxQueued) throw new JobQueueFullException(options.MaxQueued);
        var now = time.GetUtcNow();
        var record = new JobRecord
        {
            Id = Guid.NewGuid().ToString("N"), RequestJson = requestJson, Steps = steps, CreatedAt = now, UpdatedAt = now, Owner = Owner,
        };
        // The lease first: a job visible without one would look orphaned to the other replicas' scans.
        await store.TryLeaseAsync(record.Id, Owner, options.LeaseTtl, cancel);
        var (job, created) = await store.CreateAsync(record, idempotencyKey, cancel);
        if (!created)
        {
            await store.ReleaseLeaseAsync(record.Id, Owner, CancellationToken.None);
            return (job, false);
        }
        await EnqueueAsync(new OwnedJob(job.Id, job.CreatedAt), job);
        logger.LogInformation("Job {Id} queued ({Steps} steps)", job.Id, steps);
        return (job, true);
    }

    /// <summary>
    /// Cancels a job: a waiting job leaves the queue and is cancelled at once; a running one stops within one level-0 step
    /// (this call waits up to <paramref name="wait"/> for that); a job another replica owns is flagged, and its owner stops
    /// it at its next step or heartbeat. Finished jobs are returned unchanged; null when the job is unknown.
    /// </summary>
    public async Task<JobRecord?> CancelAsync(string id, TimeSpan wait, CancellationToken cancel = default)
    {
        var record = await store.GetAsync(id, cancel);
        if (record is null || record.IsFinished) return record;
        await store.RequestCancelAsync(id, cancel);
        var mine = jobs.FindRemovingWaiting(id, out bool waiting);
        if (waiting)
        {
            mine!.Finished.TrySetResult();
            record = await execution.FinishAsync(record, JobStatus.Cancelled, null);
            await execution.ReleaseAsync(mine);
            await PublishQueuePositionsAsync();
            return record;
        }
        if (mine is not null)
        {
            mine.Cancel(StopReason.Cancelled);
            await Task.WhenAny(mine.Finished.Task, Task.Delay(wait, time, cancel));
            return await store.GetAsync(id, cancel) ?? record;
        }
        // Not ours: if no live replica holds it (queued by a replica that died), cancel it here.
        if (await store.TryLeaseAsync(id, Owner, options.LeaseTtl, cancel))
        {
            try
            {
                var current = await store.GetAsync(id, cancel);
                if (current is { IsFinished: false }) return await execution.FinishAsync(current, JobStatus.Cancelled, null);
                return current;
            }
            finally { await store.ReleaseLeaseAsync(id, Owner, CancellationToken.None); }
        }
        return record;
    }

    async Task EnqueueAsync(OwnedJob job, JobRecord record)
    {
        await queueEvents.WaitAsync();
        try
        {
            int position = jobs.Enqueue(job);
            await execution.AppendEventAsync(record.Id, new JobEvent("", JobStatus.Queued, record.Step, record.Steps, record.DoneFraction, null, null, position));
        }
        finally { queueEvents.Release(); }
        work.Release();
    }

    /// <summary>Tells every waiting job whose place in the queue changed its new place.</summary>
    async Task PublishQueuePositionsAsync()
    {
        await queueEvents.WaitAsync();
        try
        {
            foreach (var (job, position) in jobs.TakeMovedPositions())
            {
                var record = await store.GetAsync(job.Id);
                if (record is null || record.IsFinished) continue;
                await execution.AppendEventAsync(job.Id, new JobEvent("", JobStatus.Queued, record.Step, record.Steps, record.DoneFraction, null, null, position));
            }
        }
        finally { queueEvents.Release(); }
    }

    async Task WorkerLoopAsync()
    {
        while (!shutdown.IsCancellationRequested)
        {
            try { await work.WaitAsync(shutdown.Token); }
            catch (OperationCanceledException) { return; }
            var next = jobs.TakeNext();
            if (next is null) continue;       // it was cancelled while waiting
            try
            {
                await PublishQueuePositionsAsync();
                await execution.RunAsync(next);
            }
            catch (Exception e)
            {
                logger.LogError(e, "Job {Id}: the runner failed", next.Id);
            }
            finally
            {
                jobs.Remove(next.Id);
                next.Finished.TrySetResult();
            }
        }
    }
}

/// <summary>Counts of one <see cref="JobRunner"/> since it started (monotonic), for metrics.</summary>
/// <param name="Done">Jobs finished with their images.</param>
/// <param name="Failed">Jobs failed (the request no longer fits, or a lower level kept failing without progress).</param>
/// <param name="Cancelled">Jobs cancelled, queued or running.</param>
/// <param name="TakenOver">Jobs this replica adopted after their owner's lease ran out (resumed from their checkpoint).</param>
/// <param name="Interrupted">Runs resumed from the last checkpoint after a lower level answered a transient error.</param>
public sealed record JobRunnerCounts(long Done, long Failed, long Cancelled, long TakenOver, long Interrupted);
