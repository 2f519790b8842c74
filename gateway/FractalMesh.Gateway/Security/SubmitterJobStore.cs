using FractalMesh.Jobs;

namespace FractalMesh.Gateway.Security;

/// <summary>
/// The job store as the runner sees it, stamping each new job with the principal submitting it. The runner creates the
/// record inside <see cref="JobRunner.SubmitAsync"/>, which knows nothing of callers; <see cref="SubmitAs"/> carries the
/// principal from the API call down that one async flow, so the submitter is in the record from its first write (a later
/// update would race with the runner's own writes, which copy the record they hold).
/// </summary>
public sealed class SubmitterJobStore(IJobStore inner) : IJobStore
{
    static readonly AsyncLocal<string?> Submitting = new();

    /// <summary>Runs <paramref name="submit"/> with <paramref name="principal"/> as the submitter of the job it creates.</summary>
    public static async Task<T> SubmitAs<T>(string? principal, Func<Task<T>> submit)
    {
        // An async method's changes to an AsyncLocal stay in its own flow: the caller's value is untouched afterwards.
        Submitting.Value = principal;
        return await submit();
    }

    public Task<(JobRecord Job, bool Created)> CreateAsync(JobRecord job, string? idempotencyKey, CancellationToken cancel = default) =>
        inner.CreateAsync(Submitting.Value is { } principal ? job with { Submitter = principal } : job, idempotencyKey, cancel);

    public Task<JobRecord?> GetAsync(string id, CancellationToken cancel = default) => inner.GetAsync(id, cancel);
    public Task UpdateAsync(JobRecord job, CancellationToken cancel = default) => inner.UpdateAsync(job, cancel);
    public Task SaveOwnedAsync(JobRecord job, JobCheckpoint? checkpoint, string owner, CancellationToken cancel = default) =>
        inner.SaveOwnedAsync(job, checkpoint, owner, cancel);
    public Task KeepAliveAsync(string id, CancellationToken cancel = default) => inner.KeepAliveAsync(id, cancel);
    public Task SaveCheckpointAsync(string id, JobCheckpoint checkpoint, CancellationToken cancel = default) => inner.SaveCheckpointAsync(id, checkpoint, cancel);
    public Task<JobCheckpoint?> LoadCheckpointAsync(string id, CancellationToken cancel = default) => inner.LoadCheckpointAsync(id, cancel);
    public Task<string> AppendEventAsync(string id, JobEvent evt, CancellationToken cancel = default) => inner.AppendEventAsync(id, evt, cancel);
    public Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string id, string? afterId, TimeSpan wait, CancellationToken cancel = default) =>
        inner.ReadEventsAsync(id, afterId, wait, cancel);
    public Task<bool> TryLeaseAsync(string id, string owner, TimeSpan ttl, CancellationToken cancel = default) => inner.TryLeaseAsync(id, owner, ttl, cancel);
    public Task ReleaseLeaseAsync(string id, string owner, CancellationToken cancel = default) => inner.ReleaseLeaseAsync(id, owner, cancel);
    public Task<IReadOnlyList<string>> OrphanedJobsAsync(CancellationToken cancel = default) => inner.OrphanedJobsAsync(cancel);
    public Task RequestCancelAsync(string id, CancellationToken cancel = default) => inner.RequestCancelAsync(id, cancel);
    public Task<bool> IsCancelRequestedAsync(string id, CancellationToken cancel = default) => inner.IsCancelRequestedAsync(id, cancel);
    public Task<IReadOnlyList<string>> ActiveJobsAsync(CancellationToken cancel = default) => inner.ActiveJobsAsync(cancel);
}
