namespace FractalMesh.Jobs;

/// <summary>
/// Durable state of jobs (docs/ARCHITECTURE.md, State in Redis): records, per-step checkpoints of partial images, an event stream any gateway
/// replica can serve, owner leases, and cancellation requests. Redis in production, in memory in the embedded mode.
/// </summary>
public interface IJobStore
{
    /// <summary>Creates the job unless <paramref name="idempotencyKey"/> already names one; returns the job and whether it is new.</summary>
    Task<(JobRecord Job, bool Created)> CreateAsync(JobRecord job, string? idempotencyKey, CancellationToken cancel = default);
    Task<JobRecord?> GetAsync(string id, CancellationToken cancel = default);
    Task UpdateAsync(JobRecord job, CancellationToken cancel = default);

    Task SaveCheckpointAsync(string id, JobCheckpoint checkpoint, CancellationToken cancel = default);
    /// <summary>
    /// Writes the record (and the checkpoint, when given) only while <paramref name="owner"/> holds the job's lease, checked
    /// and written in one atomic step; throws <see cref="LeaseLostException"/> and writes nothing otherwise.
    /// </summary>
    Task SaveOwnedAsync(JobRecord job, JobCheckpoint? checkpoint, string owner, CancellationToken cancel = default);
    /// <summary>Gives the job's keys (record, checkpoint, events) and the active set their full time to live again.</summary>
    Task KeepAliveAsync(string id, CancellationToken cancel = default);
    Task<JobCheckpoint?> LoadCheckpointAsync(string id, CancellationToken cancel = default);

    /// <summary>Appends an event and returns its id (<see cref="EventIds"/>: Redis stream ids, or ids of the same shape in memory).</summary>
    Task<string> AppendEventAsync(string id, JobEvent evt, CancellationToken cancel = default);
    /// <summary>Events after <paramref name="afterId"/> (null: from the start), waiting up to <paramref name="wait"/> for new ones.</summary>
    Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string id, string? afterId, TimeSpan wait, CancellationToken cancel = default);

    /// <summary>Takes or renews the job's lease for <paramref name="owner"/>; false when another live owner holds it.</summary>
    Task<bool> TryLeaseAsync(string id, string owner, TimeSpan ttl, CancellationToken cancel = default);
    Task ReleaseLeaseAsync(string id, string owner, CancellationToken cancel = default);
    /// <summary>Unfinished jobs whose lease has run out (their owner died): candidates for takeover.</summary>
    Task<IReadOnlyList<string>> OrphanedJobsAsync(CancellationToken cancel = default);

    Task RequestCancelAsync(string id, CancellationToken cancel = default);
    Task<bool> IsCancelRequestedAsync(string id, CancellationToken cancel = default);

    /// <summary>Queued or running jobs, oldest first (queue positions).</summary>
    Task<IReadOnlyList<string>> ActiveJobsAsync(CancellationToken cancel = default);
}

/// <summary>A write refused because another replica holds the job's lease: the writer must stop working on the job.</summary>
public sealed class LeaseLostException(string id, string owner)
    : Exception($"job {id}: {owner} no longer holds its lease; the write was refused");
