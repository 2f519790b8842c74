using Microsoft.Extensions.Logging;

namespace FractalMesh.Jobs;

/// <summary>
/// Keeps the leases of one replica's jobs and adopts orphans: every <see cref="JobRunnerOptions.Heartbeat"/> it renews the
/// lease of each job held (queued or running), keeps a queued job's record alive, acts on cancel flags set elsewhere, stops
/// the jobs another replica took, and writes the held jobs' state again after a Redis outage; every
/// <see cref="JobRunnerOptions.OrphanScanInterval"/>, when the replica is idle, it adopts the oldest job whose owner's lease
/// ran out.
/// </summary>
/// <param name="store">The job store shared by the replicas.</param>
/// <param name="jobs">The jobs this replica holds.</param>
/// <param name="options">Lease length, heartbeat, scan interval, this replica's name.</param>
/// <param name="time">The clock of every wait.</param>
/// <param name="logger">Where lost leases, takeovers and failed beats are reported.</param>
/// <param name="counters">Counts the takeovers.</param>
/// <param name="cancelWaiting">Cancels a job of this replica that waits in its queue (a cancel flag set by another replica).</param>
/// <param name="enqueue">Queues an adopted job here.</param>
sealed class LeaseKeeper(IJobStore store, OwnedJobs jobs, JobRunnerOptions options, TimeProvider time, ILogger logger, JobCounters counters,
    Func<string, Task> cancelWaiting, Func<OwnedJob, JobRecord, Task> enqueue)
{
    string Owner => options.Owner;
    bool sawDegraded;

    /// <summary>Renews the leases of every job held here, stops those another replica took, and acts on cancel flags.</summary>
    public async Task HeartbeatLoopAsync(CancellationToken shutdown)
    {
        while (!shutdown.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.Heartbeat, time, shutdown);
                await BeatAsync();
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { return; }
            catch (Exception e) { logger.LogWarning(e, "Heartbeat failed"); }
        }
    }

    Task BeatAsync() => BeatAsync(jobs.Snapshot());

    /// <summary>
    /// One beat over <paramref name="held"/>, the jobs held when the beat began: a job may finish and release its lease
    /// while the beat works through them (the tests hand it a snapshot taken before such a release).
    /// </summary>
    internal async Task BeatAsync(IReadOnlyList<OwnedJob> held)
    {
        foreach (var job in held)
        {
            if (!await store.TryLeaseAsync(job.Id, Owner, options.LeaseTtl))
            {
                if (jobs.RemoveIfWaiting(job)) job.Finished.TrySetResult();
                else job.Cancel(StopReason.LostLease);
                logger.LogWarning("Job {Id}: lease lost to another replica", job.Id);
            }
            else if (job.Released)
            {
                // Finished and released while this beat renewed it: release it again, or it would outlive its job.
                await store.ReleaseLeaseAsync(job.Id, Owner);
            }
            else
            {
                // Queued jobs write nothing until they run: without this their record would expire on a long queue.
                await store.KeepAliveAsync(job.Id);
                if (await store.IsCancelRequestedAsync(job.Id))
                {
                    if (job.Running) job.Cancel(StopReason.Cancelled);
                    else await cancelWaiting(job.Id);
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
    public async Task ScanLoopAsync(CancellationToken shutdown)
    {
        while (!shutdown.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.OrphanScanInterval, time, shutdown);
                if (jobs.IsIdle(options.MaxRunning)) await AdoptOneAsync();
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { return; }
            catch (Exception e) { logger.LogWarning(e, "Orphan scan failed"); }
        }
    }

    async Task AdoptOneAsync()
    {
        foreach (var id in await store.OrphanedJobsAsync())
        {
            if (jobs.Skips(id)) continue;
            if (!await store.TryLeaseAsync(id, Owner, options.LeaseTtl)) continue;
            var record = await store.GetAsync(id);
            if (record is null || record.IsFinished)
            {
                if (record is null) jobs.MarkVanished(id);
                await store.ReleaseLeaseAsync(id, Owner);
                continue;
            }
            record = record with { Status = JobStatus.Queued, Owner = Owner, Resumptions = record.Resumptions + 1, UpdatedAt = time.GetUtcNow() };
            await store.UpdateAsync(record);
            logger.LogInformation("Job {Id}: taken over at level-0 step {Step} (its owner's lease ran out)", id, record.Step);
            counters.TakenOver();
            await enqueue(new OwnedJob(id, record.CreatedAt), record);
            return;
        }
    }
}
