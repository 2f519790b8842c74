using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace FractalMesh.Jobs;

/// <summary>
/// Wakes the watchers of job event streams when an event arrives, from one blocking <c>XREAD BLOCK</c> per replica.
/// </summary>
/// <remarks>
/// StackExchange.Redis pipelines every caller's commands on one shared connection, so a blocking command there would hold
/// up every other command of the process: blocking reads need a connection of their own. One per watcher would cost a
/// socket and a Redis client each; instead one reader on a dedicated multiplexer blocks on every watched stream at once
/// (plus a wake-up stream of this replica, written when a watcher joins, so a new stream is read at once) and fans the
/// news out. Watchers then read their events with a plain <c>XRANGE</c> on the shared multiplexer.
/// </remarks>
public sealed class RedisStreamReader : IAsyncDisposable
{
    readonly TimeSpan block;
    readonly ILogger logger;

    readonly IConnectionMultiplexer blocking;
    readonly IConnectionMultiplexer shared;
    readonly RedisKey wakeKey;
    readonly Lock gate = new();
    readonly Dictionary<RedisKey, List<(string AfterId, TaskCompletionSource Arrived)>> waiting = new();
    readonly CancellationTokenSource stop = new();
    readonly Task loop;
    string wakeId = "0-0";

    /// <param name="blocking">A multiplexer used for nothing else (its one connection is blocked most of the time).</param>
    /// <param name="shared">The process's shared multiplexer (wake-ups are written through it).</param>
    /// <param name="wakeKey">This replica's own wake-up stream.</param>
    /// <param name="block">How long one XREAD blocks; under <paramref name="blocking"/>'s async timeout. Default 1 s.</param>
    /// <param name="logger">Where failed reads are reported (the loop goes on after each, waking every watcher).</param>
    public RedisStreamReader(IConnectionMultiplexer blocking, IConnectionMultiplexer shared, RedisKey wakeKey, TimeSpan? block = null, ILogger? logger = null)
    {
        this.block = block ?? TimeSpan.FromSeconds(1);
        this.logger = logger ?? NullLogger.Instance;
        this.blocking = blocking;
        this.shared = shared;
        this.wakeKey = wakeKey;
        loop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Completes when <paramref name="stream"/> has an entry after <paramref name="afterId"/> (maybe), or after <paramref name="wait"/>.</summary>
    public async Task WaitAsync(RedisKey stream, string afterId, TimeSpan wait, CancellationToken cancel)
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (gate)
        {
            if (!waiting.TryGetValue(stream, out var list)) waiting[stream] = list = [];
            list.Add((afterId, arrived));
        }
        try
        {
            var db = shared.GetDatabase();
            await db.StreamAddAsync(wakeKey, "w", 1, maxLength: 1, useApproximateMaxLength: false);
            _ = db.KeyExpireAsync(wakeKey, TimeSpan.FromMinutes(10), flags: CommandFlags.FireAndForget);
            await arrived.Task.WaitAsync(wait, cancel);
        }
        catch (TimeoutException) { }
        finally
        {
            lock (gate)
            {
                if (waiting.TryGetValue(stream, out var list))
                {
                    list.RemoveAll(w => w.Arrived == arrived);
                    if (list.Count == 0) waiting.Remove(stream);
                }
            }
        }
    }

    async Task ReadLoopAsync()
    {
        int failures = 0;
        while (!stop.IsCancellationRequested)
        {
            List<RedisKey> streams;
            List<RedisValue> ids;
            lock (gate)
            {
                streams = [.. waiting.Keys];
                // The oldest position any watcher of a stream waits after: an entry after it wakes them all, and each reads its own.
                ids = [.. waiting.Values.Select(l => (RedisValue)l.Select(w => w.AfterId).Aggregate((a, b) => EventIds.IsAfter(a, b) ? b : a))];
            }
            var args = new List<object> { "BLOCK", (long)block.TotalMilliseconds, "STREAMS", wakeKey };
            args.AddRange(streams.Select(s => (object)s));
            args.Add(wakeId);
            args.AddRange(ids.Select(i => (object)i));
            try
            {
                var result = await blocking.GetDatabase().ExecuteAsync("XREAD", args);
                if (!result.IsNull) Wake(result);
                failures = 0;
            }
            catch (Exception) when (stop.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                // Redis away, a timeout, or an answer this reader cannot parse: never end the loop (every watcher of the
                // replica depends on it). Waking everyone is safe: each watcher re-reads its own stream with XRANGE.
                if (failures++ == 0) logger.LogWarning(e, "Reading the job event streams failed; retrying every {Block} ms", block.TotalMilliseconds);
                WakeAll();
                try { await Task.Delay(block, stop.Token); } catch (OperationCanceledException) { return; }
            }
        }
    }

    void Wake(RedisResult result)
    {
        foreach (var (key, entries) in Streams(result))
        {
            if (key == wakeKey)
            {
                if (entries.Length > 0) wakeId = (string)((RedisResult[])entries[^1]!)[0]!;
                continue;
            }
            TaskCompletionSource[] woken;
            lock (gate) woken = waiting.TryGetValue(key, out var list) ? [.. list.Select(w => w.Arrived)] : [];
            foreach (var w in woken) w.TrySetResult();
        }
    }

    void WakeAll()
    {
        TaskCompletionSource[] woken;
        lock (gate) woken = [.. waiting.Values.SelectMany(l => l.Select(w => w.Arrived))];
        foreach (var w in woken) w.TrySetResult();
    }

    /// <summary>XREAD's answer: RESP2 gives [[key, entries], …], RESP3 a map, flattened to [key, entries, …].</summary>
    static IEnumerable<(RedisKey Key, RedisResult[] Entries)> Streams(RedisResult result)
    {
        var items = (RedisResult[])result!;
        if (items.Length > 0 && items[0].Resp2Type == ResultType.Array)
        {
            foreach (var pair in items) yield return ((RedisKey)(string)pair[0]!, (RedisResult[])pair[1]!);
        }
        else
        {
            for (int i = 0; i + 1 < items.Length; i += 2) yield return ((RedisKey)(string)items[i]!, (RedisResult[])items[i + 1]!);
        }
    }

    public async ValueTask DisposeAsync()
    {
        stop.Cancel();
        try { await loop; } catch (Exception) { }
        stop.Dispose();
    }
}
