using StackExchange.Redis;

namespace FractalMesh.Jobs;

/// <summary>
/// Redis when it is there, memory always (docs/ARCHITECTURE.md, State in Redis: "Redis unavailable means degraded, never wrong"). Every write goes
/// to this process's memory and, best effort, to Redis; while Redis is away the store is <see cref="Degraded"/>, jobs keep
/// running without durable checkpoints, and writes reach Redis again as soon as it answers. Reads prefer Redis (the state
/// every replica shares) and fall back to memory.
/// </summary>
public sealed class DegradableJobStore(IJobStore redis, InMemoryJobStore local) : IJobStore
{
    volatile bool degraded;
    readonly Lock gate = new();
    readonly HashSet<string> unsynced = new();

    /// <summary>True after a Redis call failed and until one succeeds.</summary>
    public bool Degraded => degraded;

    /// <summary>Jobs whose record or checkpoint Redis missed while it was away (<see cref="SyncAsync"/> writes them).</summary>
    public int Unsynced { get { lock (gate) return unsynced.Count; } }

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

    Task<bool> Redis(Func<Task> call) => Redis(async () => { await call(); return true; }, false);

    /// <summary>Remembers a job whose write did not reach Redis, so that <see cref="SyncAsync"/> can repair it.</summary>
    async Task WriteThrough(string id, Func<Task> call)
    {
        if (await Redis(call)) return;
        lock (gate) unsynced.Add(id);
    }

    /// <summary>Asks <see cref="SyncAsync"/> to write this job's record and checkpoint again (after Redis came back, maybe empty).</summary>
    public void MarkUnsynced(string id)
    {
        lock (gate) unsynced.Add(id);
    }

    /// <summary>
    /// Copies the latest record and checkpoint of every job written while Redis was away back to Redis, so that a job
    /// that moved on (or finished) during an outage is not seen there as it was before (and taken over for nothing).
    /// </summary>
    public async Task SyncAsync(CancellationToken cancel = default)
    {
        string[] pending;
        lock (gate) pending = unsynced.ToArray();
        foreach (var id in pending)
        {
            var job = await local.GetAsync(id, cancel);
            var checkpoint = await local.LoadCheckpointAsync(id, cancel);
            bool written = await Redis(async () =>
            {
                if (checkpoint is not null) await redis.SaveCheckpointAsync(id, checkpoint, cancel);
                if (job is not null) await redis.UpdateAsync(job, cancel);
            });
            if (!written) return;
            lock (gate) unsynced.Remove(id);
        }
    }

    public async Task<(JobRecord Job, bool Created)> CreateAsync(JobRecord job, string? idempotencyKey, CancellationToken cancel = default)
    {
        var shared = await Redis<(JobRecord, bool)?>(async () => await redis.CreateAsync(job, idempotencyKey, cancel), null);
        if (shared is { Item2: false } existing)
        {
            return existing; // another submit (maybe on another replica) already created it
        }
        if (shared is null) lock (gate) unsynced.Add(job.Id);
        return await local.CreateAsync(job, idempotencyKey, cancel);
    }

    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancel = default) =>
        await Redis(() => redis.GetAsync(id, cancel), null) ?? await local.GetAsync(id, cancel);

    public async Task UpdateAsync(JobRecord job, CancellationToken cancel = default)
    {
        await local.UpdateAsync(job, cancel);
        await WriteThrough(job.Id, () => redis.UpdateAsync(job, cancel));
    }

    public async Task SaveCheckpointAsync(string id, JobCheckpoint checkpoint, CancellationToken cancel = default)
    {
        await local.SaveCheckpointAsync(id, checkpoint, cancel);
        await WriteThrough(id, () => redis.SaveCheckpointAsync(id, checkpoint, cancel));
    }

    /// <summary>
    /// Redis arbitrates: a refusal there (another replica holds the lease) propagates and nothing is written. While Redis
    /// is away no one can arbitrate, so the write goes to memory and reaches Redis with the next sync.
    /// </summary>
    public async Task SaveOwnedAsync(JobRecord job, JobCheckpoint? checkpoint, string owner, CancellationToken cancel = default)
    {
        await WriteThrough(job.Id, () => redis.SaveOwnedAsync(job, checkpoint, owner, cancel));
        if (checkpoint is not null) await local.SaveCheckpointAsync(job.Id, checkpoint, cancel);
        await local.UpdateAsync(job, cancel);
    }

    public async Task KeepAliveAsync(string id, CancellationToken cancel = default) => await Redis(() => redis.KeepAliveAsync(id, cancel));

    public async Task<JobCheckpoint?> LoadCheckpointAsync(string id, CancellationToken cancel = default) =>
        await Redis(() => redis.LoadCheckpointAsync(id, cancel), null) ?? await local.LoadCheckpointAsync(id, cancel);

    /// <summary>Redis assigns the id; the copy in memory keeps it, so a watcher's position survives a switch to memory.</summary>
    public async Task<string> AppendEventAsync(string id, JobEvent evt, CancellationToken cancel = default)
    {
        string? shared = await Redis<string?>(async () => await redis.AppendEventAsync(id, evt, cancel), null);
        return await local.AppendEventAsync(id, evt with { Id = shared ?? "" }, cancel);
    }

    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string id, string? afterId, TimeSpan wait, CancellationToken cancel = default) =>
        await Redis<IReadOnlyList<JobEvent>?>(async () => await redis.ReadEventsAsync(id, afterId, wait, cancel), null)
            ?? await local.ReadEventsAsync(id, afterId, wait, cancel);

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

    /// <summary>Only from Redis: without it no replica can tell another's job from an orphan, so none is taken over.</summary>
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
