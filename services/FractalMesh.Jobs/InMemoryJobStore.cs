namespace FractalMesh.Jobs;

/// <summary>The same contract in process memory: the embedded mode, and the fallback while Redis is away.</summary>
/// <param name="clock">Time source (tests move it).</param>
/// <param name="retention">How long a finished job stays readable; older ones are dropped so a long run stays flat in memory.</param>
public sealed class InMemoryJobStore(TimeProvider? clock = null, TimeSpan? retention = null) : IJobStore
{
    readonly TimeProvider time = clock ?? TimeProvider.System;
    readonly TimeSpan keep = retention ?? TimeSpan.FromHours(1);
    readonly Lock gate = new();
    readonly Dictionary<string, JobRecord> jobs = new();
    readonly Dictionary<string, string> idempotency = new();
    readonly Dictionary<string, JobCheckpoint> checkpoints = new();
    readonly Dictionary<string, List<JobEvent>> events = new();
    readonly Dictionary<string, (string Owner, DateTimeOffset Until)> leases = new();
    readonly HashSet<string> cancels = new();

    public Task<(JobRecord Job, bool Created)> CreateAsync(JobRecord job, string? idempotencyKey, CancellationToken cancel = default)
    {
        lock (gate)
        {
            if (idempotencyKey is not null && idempotency.TryGetValue(idempotencyKey, out var existing) && jobs.TryGetValue(existing, out var found))
                return Task.FromResult((found, false));
            if (idempotencyKey is not null) idempotency[idempotencyKey] = job.Id;
            jobs[job.Id] = job;
            Prune();
            return Task.FromResult((job, true));
        }
    }

    /// <summary>Forgets finished jobs older than the retention, with everything that belongs to them.</summary>
    void Prune()
    {
        var cutoff = time.GetUtcNow() - keep;
        foreach (var id in jobs.Values.Where(j => j.IsFinished && j.UpdatedAt < cutoff).Select(j => j.Id).ToList())
        {
            jobs.Remove(id);
            checkpoints.Remove(id);
            events.Remove(id);
            leases.Remove(id);
            cancels.Remove(id);
        }
        foreach (var key in idempotency.Where(kv => !jobs.ContainsKey(kv.Value)).Select(kv => kv.Key).ToList()) idempotency.Remove(key);
    }

    /// <summary>Jobs held (for the memory tests).</summary>
    public int Count { get { lock (gate) return jobs.Count; } }

    public Task<JobRecord?> GetAsync(string id, CancellationToken cancel = default)
    {
        lock (gate) return Task.FromResult(jobs.GetValueOrDefault(id));
    }

    public Task UpdateAsync(JobRecord job, CancellationToken cancel = default)
    {
        lock (gate) jobs[job.Id] = job;
        return Task.CompletedTask;
    }

    public Task SaveCheckpointAsync(string id, JobCheckpoint checkpoint, CancellationToken cancel = default)
    {
        lock (gate) checkpoints[id] = checkpoint;
        return Task.CompletedTask;
    }

    public Task SaveOwnedAsync(JobRecord job, JobCheckpoint? checkpoint, string owner, CancellationToken cancel = default)
    {
        lock (gate)
        {
            if (!leases.TryGetValue(job.Id, out var lease) || lease.Owner != owner || lease.Until <= time.GetUtcNow())
                throw new LeaseLostException(job.Id, owner);
            jobs[job.Id] = job;
            if (checkpoint is not null) checkpoints[job.Id] = checkpoint;
        }
        return Task.CompletedTask;
    }

    /// <summary>Nothing expires here before it is finished and past the retention.</summary>
    public Task KeepAliveAsync(string id, CancellationToken cancel = default) => Task.CompletedTask;

    public Task<JobCheckpoint?> LoadCheckpointAsync(string id, CancellationToken cancel = default)
    {
        lock (gate) return Task.FromResult(checkpoints.GetValueOrDefault(id));
    }

    /// <summary>
    /// Appends with the event's own id when it has one that comes after the last (a copy of what Redis assigned), else
    /// with a new <c>ms-seq</c> id after the last one, as Redis would make it.
    /// </summary>
    public Task<string> AppendEventAsync(string id, JobEvent evt, CancellationToken cancel = default)
    {
        lock (gate)
        {
            if (!events.TryGetValue(id, out var list)) events[id] = list = [];
            string? last = list.Count > 0 ? list[^1].Id : null;
            string eventId = evt.Id;
            if (!EventIds.TryParse(eventId, out _) || !EventIds.IsAfter(eventId, last))
            {
                long now = time.GetUtcNow().ToUnixTimeMilliseconds();
                EventIds.TryParse(last, out var previous);
                eventId = now > previous.Ms ? EventIds.Format(now, 0) : EventIds.Format(previous.Ms, previous.Seq + 1);
            }
            list.Add(evt with { Id = eventId });
            return Task.FromResult(eventId);
        }
    }

    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string id, string? afterId, TimeSpan wait, CancellationToken cancel = default)
    {
        var deadline = time.GetUtcNow() + wait;
        while (true)
        {
            List<JobEvent> found;
            lock (gate)
            {
                found = events.TryGetValue(id, out var list)
                    ? list.Where(e => EventIds.IsAfter(e.Id, afterId)).ToList()
                    : [];
            }
            if (found.Count > 0 || time.GetUtcNow() >= deadline) return found;
            await Task.Delay(25, cancel);
        }
    }

    public Task<bool> TryLeaseAsync(string id, string owner, TimeSpan ttl, CancellationToken cancel = default)
    {
        lock (gate)
        {
            var now = time.GetUtcNow();
            if (leases.TryGetValue(id, out var lease) && lease.Owner != owner && lease.Until > now) return Task.FromResult(false);
            leases[id] = (owner, now + ttl);
            return Task.FromResult(true);
        }
    }

    public Task ReleaseLeaseAsync(string id, string owner, CancellationToken cancel = default)
    {
        lock (gate)
        {
            if (leases.TryGetValue(id, out var lease) && lease.Owner == owner) leases.Remove(id);
        }
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<string>> OrphanedJobsAsync(CancellationToken cancel = default)
    {
        lock (gate)
        {
            var now = time.GetUtcNow();
            IReadOnlyList<string> orphans = jobs.Values.Where(j => !j.IsFinished)
                .Where(j => !leases.TryGetValue(j.Id, out var l) || l.Until <= now).OrderBy(j => j.CreatedAt).Select(j => j.Id).ToList();
            return Task.FromResult(orphans);
        }
    }

    public Task RequestCancelAsync(string id, CancellationToken cancel = default)
    {
        lock (gate) cancels.Add(id);
        return Task.CompletedTask;
    }

    public Task<bool> IsCancelRequestedAsync(string id, CancellationToken cancel = default)
    {
        lock (gate) return Task.FromResult(cancels.Contains(id));
    }

    public Task<IReadOnlyList<string>> ActiveJobsAsync(CancellationToken cancel = default)
    {
        lock (gate)
        {
            IReadOnlyList<string> active = jobs.Values.Where(j => !j.IsFinished).OrderBy(j => j.CreatedAt).Select(j => j.Id).ToList();
            return Task.FromResult(active);
        }
    }
}
