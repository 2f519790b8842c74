using Microsoft.Extensions.Logging;

namespace FractalMesh.Jobs;

/// <summary>
/// Runs one job on this replica from its last checkpoint to its end: a checkpoint, record update and event after every
/// level-0 step, each written only while this replica holds the job's lease; a resume from the last checkpoint after a
/// lower level's transient failure, with back-off; and the final state (done, failed, cancelled), or nothing when
/// another replica took the job.
/// </summary>
sealed class JobExecution(IJobStore store, IJobExecutor executor, JobRunnerOptions options, TimeProvider time, ILogger logger, JobCounters counters)
{
    string Owner => options.Owner;

    public async Task RunAsync(OwnedJob job)
    {
        string id = job.Id;
        var record = await store.GetAsync(id);
        if (record is null)
        {
            logger.LogWarning("Job {Id}: its record is gone (expired?); dropped", id);
            return;
        }
        if (record.IsFinished) { await ReleaseAsync(job); return; }
        if (job.Reason == StopReason.Cancelled || await store.IsCancelRequestedAsync(id))
        {
            await FinishAsync(record, JobStatus.Cancelled, null);
            await ReleaseAsync(job);
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
                    var pause = BackOff(failuresInARow);
                    logger.LogWarning("Job {Id}: interrupted at level-0 step {Step} ({Reason}); resuming from its checkpoint in {Pause} ms",
                        id, current.Step, e.Message, pause.TotalMilliseconds);
                    await Task.Delay(pause, time, job.Stop.Token);
                    checkpoint = await store.LoadCheckpointAsync(id);
                    current = current with { Interruptions = current.Interruptions + 1, Step = checkpoint?.Step ?? 0, UpdatedAt = time.GetUtcNow() };
                    counters.Interrupted();
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
            if (release) await SafeAsync(() => ReleaseAsync(job));
        }
    }

    /// <summary>The pause before resuming after the <paramref name="failuresInARow"/>-th interruption without progress: 0.25 s doubling, at most 8 s.</summary>
    public static TimeSpan BackOff(int failuresInARow) => TimeSpan.FromMilliseconds(Math.Min(8000, 250 * (1 << Math.Min(failuresInARow - 1, 5))));

    /// <summary>Writes the job's final state and event, if this replica still holds its lease; returns the record as it stands.</summary>
    public async Task<JobRecord> FinishAsync(JobRecord record, JobStatus status, string? error)
    {
        var finished = record with { Status = status, Error = error, UpdatedAt = time.GetUtcNow(), Owner = Owner };
        try { await store.SaveOwnedAsync(finished, null, Owner); }
        catch (LeaseLostException)
        {
            // The job's new owner finishes it (with the same images: same seeds); this replica's word no longer counts.
            logger.LogWarning("Job {Id}: not marked {Status} here: another replica holds its lease", record.Id, status);
            return record;
        }
        counters.Finished(status);
        await AppendEventAsync(record.Id, new JobEvent("", status, finished.Step, finished.Steps, finished.DoneFraction, null, error));
        return finished;
    }

    /// <summary>Releases the lease of a job this replica is done with, marking it released first (see <see cref="OwnedJob.Released"/>).</summary>
    public Task ReleaseAsync(OwnedJob job)
    {
        job.Released = true;
        return store.ReleaseLeaseAsync(job.Id, Owner);
    }

    /// <summary>Appends an event signed with this replica's name.</summary>
    public Task<string> AppendEventAsync(string id, JobEvent evt) => store.AppendEventAsync(id, evt with { Owner = Owner });

    /// <summary>Runs a store call whose failure must not stop the caller (releasing a lease on the way out); logs it.</summary>
    public async Task SafeAsync(Func<Task> call)
    {
        try { await call(); }
        catch (Exception e) { logger.LogWarning(e, "Job store call failed"); }
    }
}
