using System.Diagnostics;
using FractalMesh.Protos.Level;
using FractalMesh.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;

namespace FractalMesh.LevelService;

/// <summary>
/// Merges the rows of concurrent calls into shared forward passes (DESIGN.md §3). Rows that arrive within
/// <see cref="LevelOptions.MaxWaitMilliseconds"/> of the oldest waiting ones and share its header (level, sizes, guidance,
/// iterations) go into one <c>Sample</c> call of at most <see cref="LevelOptions.MaxBatchRows"/> rows, and each call gets
/// its own rows' patches back. At most <see cref="LevelOptions.MaxQueueRows"/> rows wait; a call that would exceed that is
/// answered RESOURCE_EXHAUSTED at once. A cancelled call's waiting rows are dropped; a batch is cancelled only when every
/// call in it is, and it runs under the latest of their deadlines, which it hands to the next level.
/// Tensor work runs synchronously on the batcher's own threads (dispose scopes and grad mode are per thread).
/// </summary>
public sealed class RowBatcher : IDisposable
{
    /// <summary>A run of at most MaxBatchRows rows of one call, waiting for a batch.</summary>
    sealed class Segment
    {
        public required SamplePatchesRequest Header;
        public required string Key;
        public required List<PatchRow> Rows;
        public required DateTime Deadline;
        public required CancellationToken Cancel;
        public required long ArrivedTicks;
        /// <summary>The span of the call the rows came with (ASP.NET Core's, continuing the caller's trace), or default.</summary>
        public required ActivityContext Caller;
        public readonly TaskCompletionSource<byte[]> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Segment>? Node;
    }

    readonly LevelOptions options;
    readonly LevelTelemetry telemetry;
    readonly ILogger<RowBatcher> logger;
    readonly object gate = new();
    readonly LinkedList<Segment> queue = new();
    readonly List<Thread> workers = [];
    int queuedRows;
    bool stopping;
    ServedLevels? levels;

    public RowBatcher(IOptions<LevelOptions> options, LevelTelemetry telemetry, ILogger<RowBatcher> logger)
    {
        this.options = options.Value;
        this.telemetry = telemetry;
        this.logger = logger;
        telemetry.ObserveQueue(() => QueuedRows);
    }

    /// <summary>Rows waiting now.</summary>
    public int QueuedRows { get { lock (gate) return queuedRows; } }

    /// <summary>Starts the worker threads over the loaded levels.</summary>
    public void Start(ServedLevels served)
    {
        lock (gate)
        {
            if (levels is not null) throw new InvalidOperationException("the batcher is already running");
            levels = served;
            for (int i = 0; i < options.Workers; i++)
            {
                var thread = new Thread(Work) { IsBackground = true, Name = $"level-batcher-{i}" };
                workers.Add(thread);
                thread.Start();
            }
        }
    }

    /// <summary>
    /// Queues the rows of one validated call and waits for their patches (R × 3 × size × size bytes). Throws
    /// RESOURCE_EXHAUSTED when the queue cannot take them; cancellation drops the rows still waiting.
    /// </summary>
    public async Task<byte[]> SampleAsync(SamplePatchesRequest request, DateTime deadline, CancellationToken cancel)
    {
        int rows = request.Rows.Count;
        if (rows > options.MaxQueueRows)
        {
            telemetry.Rejected(request.Level);
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"the call has {rows} rows but at most {options.MaxQueueRows} may wait (Level:MaxQueueRows): split it"));
        }
        var header = PatchRowCodec.HeaderOf(request);
        string key = KeyOf(header);
        long now = Stopwatch.GetTimestamp();
        var caller = Activity.Current?.Context ?? default;
        var segments = new List<Segment>();
        for (int start = 0; start < rows; start += options.MaxBatchRows)
            segments.Add(new Segment
            {
                Header = header,
                Key = key,
                Rows = request.Rows.Skip(start).Take(options.MaxBatchRows).ToList(),
                Deadline = deadline,
                Cancel = cancel,
                ArrivedTicks = now,
                Caller = caller,
            });
        int waiting;
        lock (gate)
        {
            if (stopping) throw new RpcException(new Status(StatusCode.Unavailable, "the level service is shutting down"));
            if (queuedRows + rows > options.MaxQueueRows)
            {
                telemetry.Rejected(request.Level);
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"level {request.Level} is busy: {queuedRows} rows wait and the queue holds {options.MaxQueueRows} (Level:MaxQueueRows); retry later"));
            }
            foreach (var s in segments) s.Node = queue.AddLast(s);
            queuedRows += rows;
            waiting = queuedRows;
            Monitor.PulseAll(gate);
        }
        if (logger.IsEnabled(LogLevel.Debug))
            logger.LogDebug("level {Level}: queued {Rows} rows ({Waiting} waiting, deadline {Deadline})", request.Level, rows, waiting,
                deadline == DateTime.MaxValue ? "none" : FormattableString.Invariant($"in {(deadline - DateTime.UtcNow).TotalSeconds:F1} s"));

        var registrations = segments.Select(s => cancel.Register(() => Drop(s))).ToList();
        try
        {
            var parts = await Task.WhenAll(segments.Select(s => s.Done.Task)).ConfigureAwait(false);
            if (parts.Length == 1) return parts[0];
            var patches = new byte[parts.Sum(p => p.Length)];
            int at = 0;
            foreach (var p in parts) { p.CopyTo(patches, at); at += p.Length; }
            return patches;
        }
        finally
        {
            foreach (var r in registrations) r.Dispose();
        }
    }

    /// <summary>Removes a cancelled call's segment if it is still waiting.</summary>
    void Drop(Segment segment)
    {
        lock (gate)
        {
            if (segment.Node?.List is null) return;   // already taken into a batch
            queue.Remove(segment.Node);
            queuedRows -= segment.Rows.Count;
            Monitor.PulseAll(gate);
        }
        segment.Done.TrySetCanceled(segment.Cancel);
    }

    /// <summary>Rows can share a forward pass when everything but the rows is equal.</summary>
    static string KeyOf(SamplePatchesRequest header) =>
        $"{header.Level}/{header.PatchSize}/{header.CondCount}x{header.CondWidth}/{header.Guided}/{header.LinearCfg}/{string.Join(",", header.NumIter)}/{header.StartStep}";

    void Work()
    {
        while (Take() is { } batch) Run(batch);
    }

    /// <summary>Waits for the next batch: the oldest segment and every later one with its key, up to MaxBatchRows rows.</summary>
    List<Segment>? Take()
    {
        lock (gate)
        {
            while (true)
            {
                if (stopping) return null;
                if (queue.First is not { } oldest) { Monitor.Wait(gate); continue; }
                var first = oldest.Value;
                int compatible = 0;
                foreach (var s in queue) if (s.Key == first.Key) compatible += s.Rows.Count;
                var waited = Stopwatch.GetElapsedTime(first.ArrivedTicks);
                var left = TimeSpan.FromMilliseconds(options.MaxWaitMilliseconds) - waited;
                if (compatible < options.MaxBatchRows && left > TimeSpan.Zero)
                {
                    Monitor.Wait(gate, left);
                    continue;   // the queue may have changed: look again
                }
                var batch = new List<Segment>();
                int rows = 0;
                for (var node = queue.First; node is not null;)
                {
                    var next = node.Next;
                    var s = node.Value;
                    if (s.Key == first.Key && (batch.Count == 0 || rows + s.Rows.Count <= options.MaxBatchRows))
                    {
                        queue.Remove(node);
                        batch.Add(s);
                        rows += s.Rows.Count;
                    }
                    node = next;
                }
                queuedRows -= rows;
                return batch;
            }
        }
    }

    /// <summary>Samples one batch synchronously on this worker thread and hands each call its patches.</summary>
    void Run(List<Segment> batch)
    {
        var live = new List<Segment>();
        foreach (var s in batch)
        {
            if (s.Cancel.IsCancellationRequested) s.Done.TrySetCanceled(s.Cancel);
            else live.Add(s);
        }
        if (live.Count == 0) return;
        var header = live[0].Header;
        var rows = live.SelectMany(s => s.Rows).ToList();
        var deadline = live.Max(s => s.Deadline);
        telemetry.BatchTaken(header.Level, live.Count, Stopwatch.GetElapsedTime(live.Min(s => s.ArrivedTicks)));
        // One span for the shared forward pass: a child of the first call's span, linked to the others' (a span has one parent).
        using var batchSpan = LevelTelemetry.Source.StartActivity("level.batch", ActivityKind.Internal, live[0].Caller,
            links: live.Skip(1).Where(s => s.Caller != default).Select(s => new ActivityLink(s.Caller)));
        batchSpan?.SetTag(LevelTelemetry.LevelTag, header.Level);
        batchSpan?.SetTag("fractalmesh.batch.rows", rows.Count);
        batchSpan?.SetTag("fractalmesh.batch.calls", live.Count);
        using var everyoneGone = new AllCancelled(live.Select(s => s.Cancel));
        logger.LogDebug("level {Level}: sampling {Rows} rows of {Calls} calls", header.Level, rows.Count, live.Count);
        try
        {
            var sampler = levels!.SamplerOf(header.Level);
            byte[] patches;
            using (CallDeadline.Use(deadline))
            using (no_grad())
            using (NewDisposeScope())
            {
                using var request = PatchRowCodec.ToPatchRequest(header, rows, levels.Device);
                patches = sampler.Sample(request, everyoneGone.Token);
            }
            int each = 3 * header.PatchSize * header.PatchSize, at = 0;
            foreach (var s in live)
            {
                s.Done.TrySetResult(patches.AsSpan(at, s.Rows.Count * each).ToArray());
                at += s.Rows.Count * each;
            }
        }
        catch (OperationCanceledException) when (everyoneGone.Token.IsCancellationRequested)
        {
            foreach (var s in live) s.Done.TrySetCanceled(s.Cancel);
        }
        catch (Exception e)
        {
            batchSpan?.SetStatus(ActivityStatusCode.Error, e.Message);
            if (e is not RpcException) logger.LogError(e, "level {Level}: a batch of {Rows} rows failed", header.Level, rows.Count);
            foreach (var s in live) s.Done.TrySetException(e);
        }
    }

    /// <summary>A token cancelled once every one of the given tokens is.</summary>
    sealed class AllCancelled : IDisposable
    {
        readonly CancellationTokenSource source = new();
        readonly List<CancellationTokenRegistration> registrations = [];
        int remaining;

        public AllCancelled(IEnumerable<CancellationToken> tokens)
        {
            var list = tokens.ToList();
            remaining = list.Count;
            if (list.Any(t => !t.CanBeCanceled)) return;   // someone waits for good: never cancel
            foreach (var t in list)
                registrations.Add(t.Register(() => { if (Interlocked.Decrement(ref remaining) == 0) source.Cancel(); }));
        }

        public CancellationToken Token => source.Token;

        public void Dispose()
        {
            foreach (var r in registrations) r.Dispose();
            source.Dispose();
        }
    }

    public void Dispose()
    {
        List<Segment> left;
        lock (gate)
        {
            stopping = true;
            left = [.. queue];
            queue.Clear();
            queuedRows = 0;
            Monitor.PulseAll(gate);
        }
        foreach (var s in left) s.Done.TrySetException(new RpcException(new Status(StatusCode.Unavailable, "the level service is shutting down")));
        foreach (var t in workers) t.Join(TimeSpan.FromSeconds(10));
    }
}
