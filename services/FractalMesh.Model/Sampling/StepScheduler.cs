namespace FractalMesh.Model.Sampling;

/// <summary>How a level's step scheduler forms its forward passes.</summary>
public sealed record SchedulerOptions
{
    /// <summary>At most this many rows (guidance partners included) share one forward pass; a larger call runs alone.</summary>
    public int MaxRowsPerPass { get; init; } = 4096;

    /// <summary>
    /// A pass of more rows runs its transformer over chunks of at most this many rows, so that a chunk's activations stay
    /// in the caches; each row's result is the same either way. 0 (default): as many rows as make about
    /// <see cref="ChunkActivations"/> activations (rows × tokens × width), at least 16; -1: never chunk.
    /// </summary>
    public int ChunkRows { get; init; }

    /// <summary>
    /// The activations (rows × tokens × width) of one chunk when <see cref="ChunkRows"/> is 0: 2²⁰ (4 MiB of float32 per
    /// activation tensor). Measured on a 2-core CPU at the 256×256 base preset's level 2 (22 tokens × 192): 1,024 rows a
    /// pass took 28.4 s, chunks of 512 17.2 s, 256 8.6 s, 128 9.7 s, 64 11.1 s.
    /// </summary>
    public int ChunkActivations { get; init; } = 1 << 20;

    /// <summary>
    /// Where passes run: by default <see cref="ComputeThread.Process"/>, with the steps of every call (see there); null
    /// runs them on pool threads (for tests of the scheduler alone).
    /// </summary>
    public ComputeThread? Compute { get; init; } = ComputeThread.Process;

    public static readonly SchedulerOptions Default = new();
}

/// <summary>
/// The thread that runs a process's sampling: every forward pass and every step between them, of every call in flight, as
/// tasks on one dedicated thread, while waits (a remote level, a job store) hold no thread. On a CPU this gives each pass
/// every core: passes of several levels at once would split the cores, and tensor work on ever-changing pool threads would
/// start an OpenMP team per thread whose idle threads spin against the next. It also makes batching natural: a level's
/// next pass is queued behind the steps that are ready, so every call that can submit an input does so before it runs.
/// A GPU runs one stream's kernels in order anyway.
/// </summary>
public sealed class ComputeThread : TaskScheduler
{
    readonly System.Collections.Concurrent.BlockingCollection<Task> tasks = new();

    public ComputeThread(string name = "fractalmesh-compute")
    {
        var thread = new Thread(() =>
        {
            foreach (var task in tasks.GetConsumingEnumerable()) TryExecuteTask(task);
        }) { IsBackground = true, Name = name };
        thread.Start();
    }

    /// <summary>The thread every sampler of this process uses unless told otherwise.</summary>
    public static ComputeThread Process { get; } = new();

    /// <summary>Runs <paramref name="work"/> on this thread; its awaits come back to it.</summary>
    public Task<T> RunAsync<T>(Func<Task<T>> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.DenyChildAttach, this).Unwrap();

    internal void Post(Action action) => Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.DenyChildAttach, this);

    public override int MaximumConcurrencyLevel => 1;
    protected override void QueueTask(Task task) => tasks.Add(task);
    // Never inline: a continuation waits its turn behind the work that was ready before it.
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;
    protected override IEnumerable<Task> GetScheduledTasks() => tasks.ToArray();
}

/// <summary>Rows per forward pass seen by one level's scheduler: a histogram in powers of two, for metrics and benchmarks.</summary>
public sealed class PassStatistics
{
    readonly long[] buckets = new long[32];
    long passes, rows, calls, ticks;

    /// <summary>Forward passes run, rows in them and calls that shared them.</summary>
    public long Passes => Interlocked.Read(ref passes);
    public long Rows => Interlocked.Read(ref rows);
    public long Calls => Interlocked.Read(ref calls);
    /// <summary>Time spent inside the passes.</summary>
    public TimeSpan Elapsed => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref ticks));

    /// <summary>Raised after every pass with its rows and calls (metrics).</summary>
    public event Action<int, int>? Passed;

    internal void Record(int passRows, int passCalls, long elapsedTicks)
    {
        Interlocked.Add(ref ticks, elapsedTicks);
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
        Interlocked.Exchange(ref ticks, 0);
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
    readonly object sync = new();
    readonly LinkedList<Pending> queue = new();
    bool running;
    int queuedRows;

    /// <summary>Rows per pass so far.</summary>
    public PassStatistics Statistics { get; } = new();

    /// <summary>Rows waiting for a pass now.</summary>
    public int QueuedRows { get { lock (sync) return queuedRows; } }

    /// <summary>Runs <paramref name="input"/> (<paramref name="rows"/> rows) in the next pass and returns its output.</summary>
    public async Task<TOut> RunAsync(TIn input, int rows, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        var item = new Pending(input, rows, cancel);
        bool start;
        lock (sync)
        {
            item.Node = queue.AddLast(item);
            queuedRows += rows;
            start = !running;
            running = true;
        }
        if (start)
        {
            if (options.Compute is { } compute) compute.Post(Turn);
            else _ = Task.Run(Pump);
        }
        using (cancel.Register(() => Drop(item)))
            return await item.Done.Task;   // back on the caller's scheduler (the compute thread)
    }

    void Drop(Pending item)
    {
        lock (sync)
        {
            if (item.Node?.List is null) return;   // already in a pass: the pass finishes, the caller then sees its token
            queue.Remove(item.Node);
            queuedRows -= item.Rows;
        }
        item.Done.TrySetCanceled(item.Cancel);
    }

    /// <summary>One pass on the compute thread; while inputs still wait, this level asks for another turn behind the others.</summary>
    void Turn()
    {
        if (RunNext()) options.Compute!.Post(Turn);
    }

    /// <summary>Without a compute thread: runs passes on a pool thread while inputs wait, then stops (the next input starts it again).</summary>
    void Pump()
    {
        while (RunNext()) { }
    }

    /// <summary>Takes the waiting inputs (oldest first, up to the cap) and runs them; false when none wait (the pump stops).</summary>
    bool RunNext()
    {
        var batch = new List<Pending>();
        lock (sync)
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
                return false;
            }
        }
        RunPass(batch);
        return true;
    }

    void RunPass(List<Pending> batch)
    {
        IReadOnlyList<TOut> outputs;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
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
        Statistics.Record(batch.Sum(p => p.Rows), batch.Count, System.Diagnostics.Stopwatch.GetTimestamp() - start);
        for (int i = 0; i < batch.Count; i++)
            if (!batch[i].Done.TrySetResult(outputs[i])) release(outputs[i]);
    }
}
