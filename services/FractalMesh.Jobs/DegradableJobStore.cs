using StackExchange.Redis;

namespace FractalMesh.Jobs;

/// <summary>
/// Redis when it is there, memory always (DESIGN.md §4: "Redis unavailable means degraded, never wrong"). Every write goes
/// to this process's memory and, best effort, to Redis; while Redis is away the store is <see cref="Degraded"/>, jobs keep
/// running without durable checkpoints, and writes reach Redis again as soon as it answers.
/// </summary>
public sealed class DegradableJobStore(IJobStore redis, InMemoryJobStore local) : IJobStore
{
    volatile bool degraded;

    /// <summary>True after a Redis call failed and until one succeeds.</summary>
    public bool Degraded => degraded;

    async Task<T> Redis<T>(Func<Task<T>> call, T whenDown)
    {
        try
        {
            var result = await call();
            degraded = false;
            return result;
        }
        catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
        {
            degraded = true;
            return whenDown;
        }
    }

    Task Redis(Func<Task> call) => Redis(async () => { await call(); return true; }, false);

    public async Task<(JobRecord Job, bool Created)> CreateAsync(JobRecord job, string? idempotencyKey, CancellationToken cancel = default)
    {
        var shared = await Redis<(JobRecord, bool)?>(async () => await redis.CreateAsync(job, idempotencyKey, cancel), null);
        if (shared is { Item2: false } existing)
        {
            return existing; // another submit (maybe on another replica) already created it
        }
        return await local.CreateAsync(job, idempotencyKey, cancel);
    }

    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancel = default) =>
        await local.GetAsync(id, cancel) ?? await Redis(() => redis.GetAsync(id, cancel), null);

    public async Task UpdateAsync(JobRecord job, CancellationToken cancel = default)
    {
        await local.UpdateAsync(job, cancel);
        await Redis(() => redis.UpdateAsync(job, cancel));
    }

    public async Task SaveCheckpointAsync(string id, JobCheckpoint checkpoint, CancellationToken cancel = default)
    {
        await local.SaveCheckpointAsync(id, checkpoint, cancel);
        await Redis(() => redis.SaveCheckpointAsync(id, checkpoint, cancel));
    }

    public async Task<JobCheckpoint?> LoadCheckpointAsync(string id, CancellationToken cancel = default) =>
        await Redis(() => redis.LoadCheckpointAsync(id, cancel), null) ?? await local.LoadCheckpointAsync(id, cancel);

    public async Task AppendEventAsync(string id, JobEvent evt, CancellationToken cancel = default)
    {
        await local.AppendEventAsync(id, evt, cancel);
        await Redis(() => redis.AppendEventAsync(id, evt, cancel));
    }

    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string id, string? afterId, TimeSpan wait, CancellationToken cancel = default) =>
        await local.GetAsync(id, cancel) is not null
            ? await local.ReadEventsAsync(id, afterId, wait, cancel)
            : await Redis(() => redis.ReadEventsAsync(id, afterId, wait, cancel), []);

    public async Task<bool> TryLeaseAsync(string id, string owner, TimeSpan ttl, CancellationToken cancel = default)
    {
        // Only Redis can arbitrate between replicas; while it is away each replica keeps the jobs it already runs.
        var shared = await Redis<bool?>(async () => await redis.TryLeaseAsync(id, owner, ttl, cancel), null);
        return shared ?? await local.TryLeaseAsync(id, owner, ttl, cancel);
    }

    public async Task ReleaseLeaseAsync(string id, string owner, CancellationToken cancel = default)
    {
        await local.ReleaseLeaseAsync(id, owner, cancel);
        await Redis(() => redis.ReleaseLeaseAsync(id, owner, cancel));
    }

    public Task<IReadOnlyList<string>> OrphanedJobsAsync(CancellationToken cancel = default) =>
        Redis(() => redis.OrphanedJobsAsync(cancel), (IReadOnlyList<string>)[]);

    public async Task RequestCancelAsync(string id, CancellationToken cancel = default)
    {
        await local.RequestCancelAsync(id, cancel);
        await Redis(() => redis.RequestCancelAsync(id, cancel));
    }

    public async Task<bool> IsCancelRequestedAsync(string id, CancellationToken cancel = default) =>
        await local.IsCancelRequestedAsync(id, cancel) || await Redis(() => redis.IsCancelRequestedAsync(id, cancel), false);

    public async Task<IReadOnlyList<string>> ActiveJobsAsync(CancellationToken cancel = default) =>
        await Redis<IReadOnlyList<string>?>(async () => await redis.ActiveJobsAsync(cancel), null) ?? await local.ActiveJobsAsync(cancel);
}
