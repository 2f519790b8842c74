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
    public RedisStreamReader(IConnectionMultiplexer blocking, IConnectionMultiplexer shared, RedisKey wakeKey, TimeSpan? block = null)
    {
        this.block = block ?? TimeSpan.FromSeconds(1);
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
            RedisResult result;
            try { result = await blocking.GetDatabase().ExecuteAsync("XREAD", args); }
            catch (Exception) when (!stop.IsCancellationRequested)
            {
                try { await Task.Delay(block, stop.Token); } catch (OperationCanceledException) { return; }
                continue;
            }
            catch (Exception) { return; }
            if (result.IsNull) continue;
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
