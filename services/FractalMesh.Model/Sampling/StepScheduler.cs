namespace FractalMesh.Model.Sampling;

/// <summary>How a level's step scheduler forms its forward passes.</summary>
public sealed record SchedulerOptions
{
    /// <summary>At most this many rows (guidance partners included) share one forward pass; a larger call runs alone.</summary>
    public int MaxRowsPerPass { get; init; } = 4096;

    public static readonly SchedulerOptions Default = new();
}

/// <summary>Rows per forward pass seen by one level's scheduler: a histogram in powers of two, for metrics and benchmarks.</summary>
public sealed class PassStatistics
{
    readonly long[] buckets = new long[32];
    long passes, rows, calls;

    /// <summary>Forward passes run, rows in them and calls that shared them.</summary>
    public long Passes => Interlocked.Read(ref passes);
    public long Rows => Interlocked.Read(ref rows);
    public long Calls => Interlocked.Read(ref calls);

    /// <summary>Raised after every pass with its rows and calls (metrics).</summary>
    public event Action<int, int>? Passed;

    internal void Record(int passRows, int passCalls)
    {
        Passed?.Invoke(passRows, passCalls);
        Interlocked.Increment(ref passes);
        Interlocked.Add(ref rows, passRows);
        Interlocked.Add(ref calls, passCalls);
        Interlocked.Increment(ref buckets[Math.Min(31, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)Math.Max(1, passRows)))]);
    }

    /// <summary>(upper bound of the bucket, passes) for every non-empty bucket: rows in (bound/2, bound].</summary>
    public IReadOnlyList<(int UpTo, long Passes)> Histogram() =>
        Enumerable.Range(0, buckets.Length).Where(i => Interlocked.Read(ref buckets[i]) > 0)
            .Select(i => (i == 0 ? 0 : 1 << (i - 1), Interlocked.Read(ref buckets[i]))).ToList();

    public void Reset()
    {
        for (int i = 0; i < buckets.Length; i++) Interlocked.Exchange(ref buckets[i], 0);
        Interlocked.Exchange(ref passes, 0);
        Interlocked.Exchange(ref rows, 0);
        Interlocked.Exchange(ref calls, 0);
    }
}

/// <summary>
/// Step-level (continuous) batching of one level: every call in flight submits the input of its next step; whenever no
/// pass is running, the waiting inputs, oldest first and up to <see cref="SchedulerOptions.MaxRowsPerPass"/> rows, run
/// as one forward pass and each call gets its own part back. A call therefore joins the running work at the next step
/// boundary and leaves the moment it is done; an idle level runs an input at once, with no fixed wait. An input whose call
/// is cancelled while it waits is dropped. Rows never influence each other's results (every row's computation is its
/// own), so sharing a pass changes no byte.
/// </summary>
/// <remarks>
/// The pass runs synchronously on a thread-pool thread with its own dispose scope and grad mode: <paramref name="run"/>
/// must hand back outputs that live outside any scope (the caller disposes them). Inputs stay owned by their callers,
/// who keep them alive until the awaited pass has finished.
/// </remarks>
public sealed class StepScheduler<TIn, TOut>(
    Func<IReadOnlyList<TIn>, IReadOnlyList<TOut>> run, Action<TOut> release, SchedulerOptions? options = null)
{
    sealed class Pending(TIn input, int rows, CancellationToken cancel)
    {
        public readonly TIn Input = input;
        public readonly int Rows = rows;
        public readonly CancellationToken Cancel = cancel;
        public readonly TaskCompletionSource<TOut> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Pending>? Node;
    }

    readonly SchedulerOptions options = options ?? SchedulerOptions.Default;
    readonly object gate = new();
    readonly LinkedList<Pending> queue = new();
    bool running;
    int queuedRows;

    /// <summary>Rows per pass so far.</summary>
    public PassStatistics Statistics { get; } = new();

    /// <summary>Rows waiting for a pass now.</summary>
    public int QueuedRows { get { lock (gate) return queuedRows; } }

    /// <summary>Runs <paramref name="input"/> (<paramref name="rows"/> rows) in the next pass and returns its output.</summary>
    public async Task<TOut> RunAsync(TIn input, int rows, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        var item = new Pending(input, rows, cancel);
        bool start;
        lock (gate)
        {
            item.Node = queue.AddLast(item);
            queuedRows += rows;
            start = !running;
            running = true;
        }
        if (start) _ = Task.Run(Pump);
        using (cancel.Register(() => Drop(item)))
            return await item.Done.Task.ConfigureAwait(false);
    }

    void Drop(Pending item)
    {
        lock (gate)
        {
            if (item.Node?.List is null) return;   // already in a pass: the pass finishes, the caller then sees its token
            queue.Remove(item.Node);
            queuedRows -= item.Rows;
        }
        item.Done.TrySetCanceled(item.Cancel);
    }

    /// <summary>Runs passes while inputs wait, then stops (the next input starts it again).</summary>
    void Pump()
    {
        while (true)
        {
            var batch = new List<Pending>();
            lock (gate)
            {
                int rows = 0;
                while (queue.First is { } node && (batch.Count == 0 || rows + node.Value.Rows <= options.MaxRowsPerPass))
                {
                    queue.RemoveFirst();
                    batch.Add(node.Value);
                    rows += node.Value.Rows;
                }
                queuedRows -= rows;
                if (batch.Count == 0)
                {
                    running = false;
                    return;
                }
            }
            RunPass(batch);
        }
    }

    void RunPass(List<Pending> batch)
    {
        IReadOnlyList<TOut> outputs;
        try
        {
            outputs = run(batch.Select(p => p.Input).ToList());
            if (outputs.Count != batch.Count) throw new InvalidOperationException($"a pass over {batch.Count} inputs gave {outputs.Count} outputs");
        }
        catch (Exception e)
        {
            foreach (var p in batch) p.Done.TrySetException(e);
            return;
        }
        Statistics.Record(batch.Sum(p => p.Rows), batch.Count);
        for (int i = 0; i < batch.Count; i++)
            if (!batch[i].Done.TrySetResult(outputs[i])) release(outputs[i]);
    }
}
