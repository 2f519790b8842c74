namespace FractalMesh.Jobs;

/// <summary>Why a job's run was stopped before it finished.</summary>
enum StopReason { None, Cancelled, LostLease, Shutdown }

/// <summary>A job this replica holds the lease of: waiting in the queue or running.</summary>
sealed class OwnedJob(string id, DateTimeOffset createdAt)
{
    public string Id { get; } = id;
    public DateTimeOffset CreatedAt { get; } = createdAt;
    public CancellationTokenSource Stop { get; } = new();
    public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public volatile StopReason Reason;
    /// <summary>Set when a worker took it from the queue; guarded by <see cref="OwnedJobs"/>' lock.</summary>
    public bool Running;
    /// <summary>The queue position last announced in an event; guarded by <see cref="OwnedJobs"/>' lock.</summary>
    public int PublishedPosition;
    /// <summary>
    /// Set before this replica releases the job's lease on the way out. A heartbeat that renewed the lease in between
    /// (it took its snapshot while the job was still held) sees this after its renewal and releases the lease again.
    /// </summary>
    public volatile bool Released;

    public void Cancel(StopReason reason)
    {
        if (Reason == StopReason.None) Reason = reason;
        Stop.Cancel();
    }
}

/// <summary>
/// The jobs one replica holds the lease of, behind one lock: the waiting ones in queue order (oldest first) and the running
/// ones, plus the ids found active in the store without a record (skipped by the orphan scan).
/// </summary>
sealed class OwnedJobs
{
    readonly Lock gate = new();
    readonly List<OwnedJob> queue = [];                  // waiting, oldest first
    readonly Dictionary<string, OwnedJob> owned = [];    // waiting or running
    readonly HashSet<string> vanished = [];              // active in the store without a record: skipped by the scan

    public int QueuedCount { get { lock (gate) return queue.Count; } }
    public int RunningCount { get { lock (gate) return owned.Count - queue.Count; } }

    /// <summary>1 for the next job to start, 2 after it…; null when the job is not waiting here.</summary>
    public int? QueuePosition(string id)
    {
        lock (gate)
        {
            int i = queue.FindIndex(j => j.Id == id);
            return i < 0 ? null : i + 1;
        }
    }

    /// <summary>Queues <paramref name="job"/> in order of creation; returns its position, recorded as published.</summary>
    public int Enqueue(OwnedJob job)
    {
        lock (gate)
        {
            owned[job.Id] = job;
            int at = queue.FindIndex(j => j.CreatedAt > job.CreatedAt);
            if (at < 0) queue.Add(job); else queue.Insert(at, job);
            int position = queue.IndexOf(job) + 1;
            job.PublishedPosition = position;
            return position;
        }
    }

    /// <summary>The oldest waiting job, now marked running; null when the queue is empty (a job cancelled while waiting).</summary>
    public OwnedJob? TakeNext()
    {
        lock (gate)
        {
            var next = queue.FirstOrDefault();
            if (next is null) return null;
            queue.RemoveAt(0);
            next.Running = true;
            return next;
        }
    }

    /// <summary>The job held under <paramref name="id"/>, or null; a waiting one is removed from the queue and the set (<paramref name="removedWaiting"/>).</summary>
    public OwnedJob? FindRemovingWaiting(string id, out bool removedWaiting)
    {
        lock (gate)
        {
            removedWaiting = false;
            if (!owned.TryGetValue(id, out var job)) return null;
            if (!job.Running)
            {
                queue.Remove(job);
                owned.Remove(id);
                removedWaiting = true;
            }
            return job;
        }
    }

    /// <summary>Removes <paramref name="job"/> if it is still waiting; false when it runs (or is gone).</summary>
    public bool RemoveIfWaiting(OwnedJob job)
    {
        lock (gate)
        {
            bool wasWaiting = !job.Running && queue.Remove(job);
            if (wasWaiting) owned.Remove(job.Id);
            return wasWaiting;
        }
    }

    /// <summary>Forgets a job whose run ended.</summary>
    public void Remove(string id)
    {
        lock (gate) owned.Remove(id);
    }

    /// <summary>Every job held now, waiting or running.</summary>
    public OwnedJob[] Snapshot()
    {
        lock (gate) return [.. owned.Values];
    }

    /// <summary>Forgets every job; returns those that were held.</summary>
    public OwnedJob[] Clear()
    {
        lock (gate)
        {
            OwnedJob[] held = [.. owned.Values];
            owned.Clear();
            queue.Clear();
            return held;
        }
    }

    /// <summary>The waiting jobs whose place changed since it was last announced, with their new places (now recorded as announced).</summary>
    public List<(OwnedJob Job, int Position)> TakeMovedPositions()
    {
        lock (gate)
        {
            var moved = queue.Select((j, i) => (j, i + 1)).Where(p => p.j.PublishedPosition != p.Item2).ToList();
            foreach (var (job, position) in moved) job.PublishedPosition = position;
            return moved;
        }
    }

    /// <summary>Nothing waits and a worker is free.</summary>
    public bool IsIdle(int maxRunning)
    {
        lock (gate) return queue.Count == 0 && owned.Count < maxRunning;
    }

    /// <summary>Whether the orphan scan should pass over <paramref name="id"/>: held here, or known to have no record.</summary>
    public bool Skips(string id)
    {
        lock (gate) return owned.ContainsKey(id) || vanished.Contains(id);
    }

    /// <summary>Remembers that <paramref name="id"/> is active in the store without a record.</summary>
    public void MarkVanished(string id)
    {
        lock (gate) vanished.Add(id);
    }
}
