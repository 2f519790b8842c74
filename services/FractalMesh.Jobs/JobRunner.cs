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
/// </remarks>
public sealed class JobRunner : IAsyncDisposable
{
    enum StopReason { None, Cancelled, LostLease, Shutdown }

    /// <summary>A job this replica holds the lease of: waiting in the queue or running.</summary>
    sealed class OwnedJob(string id, DateTimeOffset createdAt)
    {
        public string Id { get; } = id;
        public DateTimeOffset CreatedAt { get; } = createdAt;
        public CancellationTokenSource Stop { get; } = new();
        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile StopReason Reason;
        public bool Running;
        public int PublishedPosition;

        public void Cancel(StopReason reason)
        {
            if (Reason == StopReason.None) Reason = reason;
            Stop.Cancel();
        }
    }

    readonly IJobStore store;
    readonly IJobExecutor executor;
    readonly JobRunnerOptions options;
    readonly ILogger logger;
    readonly TimeProvider time;
    readonly Lock gate = new();
    readonly List<OwnedJob> queue = [];                  // waiting, oldest first
    readonly Dictionary<string, OwnedJob> owned = [];    // waiting or running
    readonly HashSet<string> vanished = [];              // active in the store without a record: skipped by the scan
    readonly SemaphoreSlim work = new(0);
    readonly SemaphoreSlim queueEvents = new(1, 1);      // queued events leave in queue order
    readonly CancellationTokenSource shutdown = new();
    Task[] loops = [];
    bool sawDegraded;
    long done, failed, cancelled, takenOver, interrupted;

    public JobRunner(IJobStore store, IJobExecutor executor, JobRunnerOptions options, ILogger<JobRunner>? logger = null, TimeProvider? time = null)
    {
        if (options.LeaseTtl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "LeaseTtl must be positive");
        if (options.MaxRunning < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxRunning must be at least 1");
        this.store = store;
        this.executor = executor;
        this.options = options;
        this.logger = logger ?? NullLogger<JobRunner>.Instance;
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>This replica's name in leases, records and events.</summary>
    public string Owner => options.Owner;

    public int QueuedCount { get { lock (gate) return queue.Count; } }
    public int RunningCount { get { lock (gate) return owned.Count - queue.Count; } }

    /// <summary>What this replica did since it started: jobs finished by state, jobs taken over, runs resumed after an interruption.</summary>
    public JobRunnerCounts Counts => new(Interlocked.Read(ref done), Interlocked.Read(ref failed), Interlocked.Read(ref cancelled),
        Interlocked.Read(ref takenOver), Interlocked.Read(ref interrupted));

    /// <summary>1 for the next job to start here, 2 after it…; null when the job is not waiting on this replica.</summary>
    public int? QueuePosition(string id)
    {
        lock (gate)
        {
            int i = queue.FindIndex(j => j.Id == id);
            return i < 0 ? null : i + 1;
        }
    }

    /// <summary>Starts the workers, the heartbeat and the orphan scan.</summary>
    public void Start()
    {
        loops =
        [
            .. Enumerable.Range(0, options.MaxRunning).Select(_ => Task.Run(WorkerLoopAsync)),
            Task.Run(HeartbeatLoopAsync),
            Task.Run(ScanLoopAsync),
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
        OwnedJob[] held;
        lock (gate) held = owned.Values.ToArray();
        foreach (var job in held) job.Cancel(StopReason.Shutdown);
        try { await Task.WhenAll(loops); }
        catch (OperationCanceledException) { }
        lock (gate)
        {
            held = owned.Values.ToArray();
            owned.Clear();
            queue.Clear();
        }
        foreach (var job in held) await SafeAsync(() => store.ReleaseLeaseAsync(job.Id, Owner));
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
        lock (gate)
        {
            if (queue.Count >= options.MaxQueued) throw new JobQueueFullException(options.MaxQueued);
        }
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
        OwnedJob? mine;
        bool waiting = false;
        lock (gate)
        {
            if (owned.TryGetValue(id, out mine) && !mine.Running)
            {
                queue.Remove(mine);
                owned.Remove(id);
                waiting = true;
            }
        }
        if (waiting)
        {
            mine!.Finished.TrySetResult();
            record = await FinishAsync(record, JobStatus.Cancelled, null);
            await store.ReleaseLeaseAsync(id, Owner, CancellationToken.None);
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
                if (current is { IsFinished: false }) return await FinishAsync(current, JobStatus.Cancelled, null);
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
            int position;
            lock (gate)
            {
                owned[job.Id] = job;
                int at = queue.FindIndex(j => j.CreatedAt > job.CreatedAt);
                if (at < 0) queue.Add(job); else queue.Insert(at, job);
                position = queue.IndexOf(job) + 1;
                job.PublishedPosition = position;
            }
            await AppendEventAsync(record.Id, new JobEvent("", JobStatus.Queued, record.Step, record.Steps, record.DoneFraction, null, null, position));
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
            List<(OwnedJob Job, int Position)> moved;
            lock (gate)
            {
                moved = queue.Select((j, i) => (j, i + 1)).Where(p => p.j.PublishedPosition != p.Item2).ToList();
                foreach (var (job, position) in moved) job.PublishedPosition = position;
            }
            foreach (var (job, position) in moved)
            {
                var record = await store.GetAsync(job.Id);
                if (record is null || record.IsFinished) continue;
                await AppendEventAsync(job.Id, new JobEvent("", JobStatus.Queued, record.Step, record.Steps, record.DoneFraction, null, null, position));
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
            OwnedJob? next;
            lock (gate)
            {
                next = queue.FirstOrDefault();
                if (next is null) continue;       // it was cancelled while waiting
                queue.RemoveAt(0);
                next.Running = true;
            }
            try
            {
                await PublishQueuePositionsAsync();
                await RunAsync(next);
            }
            catch (Exception e)
            {
                logger.LogError(e, "Job {Id}: the runner failed", next.Id);
            }
            finally
            {
                lock (gate) owned.Remove(next.Id);
                next.Finished.TrySetResult();
            }
        }
    }

    async Task RunAsync(OwnedJob job)
    {
        string id = job.Id;
        var record = await store.GetAsync(id);
        if (record is null)
        {
            logger.LogWarning("Job {Id}: its record is gone (expired?); dropped", id);
            return;
        }
        if (record.IsFinished) { await store.ReleaseLeaseAsync(id, Owner); return; }
        if (job.Reason == StopReason.Cancelled || await store.IsCancelRequestedAsync(id))
        {
            await FinishAsync(record, JobStatus.Cancelled, null);
            await store.ReleaseLeaseAsync(id, Owner);
            return;
        }
        var checkpoint = await store.LoadCheckpointAsync(id);
        var current = record with
        {
            Status = JobStatus.Running, Owner = Owner, UpdatedAt = time.GetUtcNow(),
            Step = checkpoint?.Step ?? 0,
        };
        if (checkpoint is not null)
            logger.LogInformation("Job {Id}: resuming at level-0 step {Step} (resumption {Count})", id, checkpoint.Step, current.Resumptions);

        // Awaited after every level-0 step: the checkpoint is stored before the next step starts, so a failure loses at
        // most the step in flight. No thread waits meanwhile.
        async ValueTask OnStep(JobStepReport report)
        {
            if (!await store.TryLeaseAsync(id, Owner, options.LeaseTtl))
            {
                job.Cancel(StopReason.LostLease);
                return;
            }
            var next = current with
            {
                Step = report.Checkpoint.Step, Steps = report.Steps, DoneFraction = report.DoneFraction, UpdatedAt = time.GetUtcNow(),
            };
            try { await store.SaveOwnedAsync(next, report.Checkpoint, Owner); }
            catch (LeaseLostException)
            {
                // Taken over between the renewal and the write: the store refused it, and this copy stops.
                job.Cancel(StopReason.LostLease);
                return;
            }
            current = next;
            await AppendEventAsync(id, new JobEvent("", JobStatus.Running, current.Step, current.Steps, current.DoneFraction, report.PreviewPng, null));
            if (await store.IsCancelRequestedAsync(id)) job.Cancel(StopReason.Cancelled);
        }

        bool release = true;
        try
        {
            await store.SaveOwnedAsync(current, null, Owner);
            await AppendEventAsync(id, new JobEvent("", JobStatus.Running, current.Step, current.Steps, current.DoneFraction, null, null));
            IReadOnlyList<JobImage> images;
            int failuresInARow = 0;
            while (true)
            {
                int stepBefore = current.Step;
                try
                {
                    images = await executor.RunAsync(current, checkpoint, OnStep, job.Stop.Token);
                    break;
                }
                catch (JobInterruptedException e) when (!job.Stop.IsCancellationRequested)
                {
                    // Resume from the last checkpoint: only the step in flight is done again.
                    failuresInARow = current.Step > stepBefore ? 1 : failuresInARow + 1;
                    if (failuresInARow > options.MaxInterruptionsWithoutProgress)
                        throw new InvalidOperationException($"interrupted {failuresInARow} times in a row without progress; last: {e.Message}", e);
                    var pause = TimeSpan.FromMilliseconds(Math.Min(8000, 250 * (1 << Math.Min(failuresInARow - 1, 5))));
                    logger.LogWarning("Job {Id}: interrupted at level-0 step {Step} ({Reason}); resuming from its checkpoint in {Pause} ms",
                        id, current.Step, e.Message, pause.TotalMilliseconds);
                    await Task.Delay(pause, time, job.Stop.Token);
                    checkpoint = await store.LoadCheckpointAsync(id);
                    current = current with { Interruptions = current.Interruptions + 1, Step = checkpoint?.Step ?? 0, UpdatedAt = time.GetUtcNow() };
                    Interlocked.Increment(ref interrupted);
                    await store.SaveOwnedAsync(current, null, Owner);
                    await AppendEventAsync(id, new JobEvent("", JobStatus.Running, current.Step, current.Steps, current.DoneFraction, null, null));
                }
            }
            current = current with { Status = JobStatus.Done, Images = images, Step = Math.Max(current.Step, current.Steps), DoneFraction = 1 };
            await FinishAsync(current, JobStatus.Done, null);
            logger.LogInformation("Job {Id}: done ({Count} images)", id, images.Count);
        }
        catch (OperationCanceledException) when (job.Stop.IsCancellationRequested)
        {
            switch (job.Reason)
            {
                case StopReason.Cancelled:
                    await FinishAsync(current, JobStatus.Cancelled, null);
                    logger.LogInformation("Job {Id}: cancelled at level-0 step {Step}", id, current.Step);
                    break;
                case StopReason.LostLease:
                    release = false;
                    logger.LogWarning("Job {Id}: another replica holds its lease; stopped here at step {Step}", id, current.Step);
                    break;
                default:
                    logger.LogInformation("Job {Id}: interrupted by shutdown at step {Step}; another replica resumes it", id, current.Step);
                    break;
            }
        }
        catch (LeaseLostException)
        {
            release = false;
            logger.LogWarning("Job {Id}: another replica holds its lease (a write was refused); stopped here at step {Step}", id, current.Step);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Job {Id} failed", id);
            await FinishAsync(current, JobStatus.Failed, e.Message);
        }
        finally
        {
            if (release) await SafeAsync(() => store.ReleaseLeaseAsync(id, Owner));
        }
    }

    async Task<JobRecord> FinishAsync(JobRecord record, JobStatus status, string? error)
    {
        var finished = record with { Status = status, Error = error, UpdatedAt = time.GetUtcNow(), Owner = Owner };
        try { await store.SaveOwnedAsync(finished, null, Owner); }
        catch (LeaseLostException)
        {
            // The job's new owner finishes it (with the same images: same seeds); this replica's word no longer counts.
            logger.LogWarning("Job {Id}: not marked {Status} here: another replica holds its lease", record.Id, status);
            return record;
        }
        Interlocked.Increment(ref status == JobStatus.Done ? ref done : ref status == JobStatus.Failed ? ref failed : ref cancelled);
        await AppendEventAsync(record.Id, new JobEvent("", status, finished.Step, finished.Steps, finished.DoneFraction, null, error));
        return finished;
    }

    Task<string> AppendEventAsync(string id, JobEvent evt) => store.AppendEventAsync(id, evt with { Owner = Owner });

    /// <summary>Renews the leases of every job held here, stops those another replica took, and acts on cancel flags.</summary>
    async Task HeartbeatLoopAsync()
    {
        while (!shutdown.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.Heartbeat, time, shutdown.Token);
                await BeatAsync();
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { return; }
            catch (Exception e) { logger.LogWarning(e, "Heartbeat failed"); }
        }
    }

    async Task BeatAsync()
    {
        OwnedJob[] held;
        lock (gate) held = owned.Values.ToArray();
        foreach (var job in held)
        {
            if (!await store.TryLeaseAsync(job.Id, Owner, options.LeaseTtl))
            {
                bool wasWaiting;
                lock (gate)
                {
                    wasWaiting = !job.Running && queue.Remove(job);
                    if (wasWaiting) owned.Remove(job.Id);
                }
                if (wasWaiting) job.Finished.TrySetResult();
                else job.Cancel(StopReason.LostLease);
                logger.LogWarning("Job {Id}: lease lost to another replica", job.Id);
            }
            else
            {
                // Queued jobs write nothing until they run: without this their record would expire on a long queue.
                await store.KeepAliveAsync(job.Id);
                if (await store.IsCancelRequestedAsync(job.Id))
                {
                    if (job.Running) job.Cancel(StopReason.Cancelled);
                    else await CancelAsync(job.Id, TimeSpan.Zero);
                }
            }
        }
        if (store is DegradableJobStore degradable)
        {
            // Back from an outage (Redis maybe restarted empty): write every held job's state again.
            if (degradable.Degraded) sawDegraded = true;
            else if (sawDegraded)
            {
                sawDegraded = false;
                foreach (var job in held) degradable.MarkUnsynced(job.Id);
            }
            if (!degradable.Degraded && degradable.Unsynced > 0) await degradable.SyncAsync();
        }
    }

    /// <summary>An idle replica adopts the oldest orphaned job (its owner's lease ran out) and resumes it from its checkpoint.</summary>
    async Task ScanLoopAsync()
    {
        while (!shutdown.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.OrphanScanInterval, time, shutdown.Token);
                bool idle;
                lock (gate) idle = queue.Count == 0 && owned.Count < options.MaxRunning;
                if (idle) await AdoptOneAsync();
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { return; }
            catch (Exception e) { logger.LogWarning(e, "Orphan scan failed"); }
        }
    }

    async Task AdoptOneAsync()
    {
        foreach (var id in await store.OrphanedJobsAsync())
        {
            lock (gate)
            {
                if (owned.ContainsKey(id) || vanished.Contains(id)) continue;
            }
            if (!await store.TryLeaseAsync(id, Owner, options.LeaseTtl)) continue;
            var record = await store.GetAsync(id);
            if (record is null || record.IsFinished)
            {
                if (record is null) lock (gate) vanished.Add(id);
                await store.ReleaseLeaseAsync(id, Owner);
                continue;
            }
            record = record with { Status = JobStatus.Queued, Owner = Owner, Resumptions = record.Resumptions + 1, UpdatedAt = time.GetUtcNow() };
            await store.UpdateAsync(record);
            logger.LogInformation("Job {Id}: taken over at level-0 step {Step} (its owner's lease ran out)", id, record.Step);
            Interlocked.Increment(ref takenOver);
            await EnqueueAsync(new OwnedJob(id, record.CreatedAt), record);
            return;
        }
    }

    async Task SafeAsync(Func<Task> call)
    {
        try { await call(); }
        catch (Exception e) { logger.LogWarning(e, "Job store call failed"); }
    }
}

/// <summary>Counts of one <see cref="JobRunner"/> since it started (monotonic), for metrics.</summary>
/// <param name="Done">Jobs finished with their images.</param>
/// <param name="Failed">Jobs failed (the request no longer fits, or a lower level kept failing without progress).</param>
/// <param name="Cancelled">Jobs cancelled, queued or running.</param>
/// <param name="TakenOver">Jobs this replica adopted after their owner's lease ran out (resumed from their checkpoint).</param>
/// <param name="Interrupted">Runs resumed from the last checkpoint after a lower level answered a transient error.</param>
public sealed record JobRunnerCounts(long Done, long Failed, long Cancelled, long TakenOver, long Interrupted);
