using System.Text.Json;
using StackExchange.Redis;

namespace FractalMesh.Jobs;

/// <summary>Every Redis key FractalMesh uses, built in one place with one prefix.</summary>
public sealed class RedisKeys(string prefix = "fm")
{
    public RedisKey Job(string id) => $"{prefix}:job:{id}";
    public RedisKey Idempotency(string key) => $"{prefix}:idem:{key}";
    public RedisKey Checkpoint(string id) => $"{prefix}:ckpt:{id}";
    public RedisKey Events(string id) => $"{prefix}:events:{id}";
    public RedisKey Lease(string id) => $"{prefix}:lease:{id}";
    public RedisKey Cancel(string id) => $"{prefix}:cancel:{id}";
    public RedisKey Active => $"{prefix}:active";
    /// <summary>A replica's wake-up stream for its blocking reader (<see cref="RedisStreamReader"/>).</summary>
    public RedisKey Wake(string replica) => $"{prefix}:wake:{replica}";
}

/// <summary>
/// Job state in Redis (StackExchange.Redis, one shared multiplexer): the record as JSON, the latest checkpoint as a hash,
/// events in a stream, the owner lease as a key with a TTL, and the set of active jobs. Every key expires after
/// <c>ttl</c> so abandoned jobs clean themselves up: the owner's heartbeat gives a held job's keys (queued or running) and
/// the active set their full TTL again (<see cref="KeepAliveAsync"/>), and reading the active set drops ids whose record
/// is gone.
/// </summary>
/// <param name="redis">The process's one shared multiplexer.</param>
/// <param name="ttl">Time to live of every key (the retention).</param>
/// <param name="prefix">Prefix of every key.</param>
/// <param name="reader">Blocks on the event streams for waiting reads (<c>XREAD BLOCK</c> on its own connection); null: reads poll.</param>
public sealed class RedisJobStore(IConnectionMultiplexer redis, TimeSpan ttl, string prefix = "fm", RedisStreamReader? reader = null) : IJobStore
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    readonly RedisKeys keys = new(prefix);
    IDatabase Db => redis.GetDatabase();

    // Renews only our own lease, or takes a free one: compare-and-set in one round trip.
    const string LeaseScript = """
        local v = redis.call('GET', KEYS[1])
        if v == false or v == ARGV[1] then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return 1
        end
        return 0
        """;

    const string ReleaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """;

    // The owner check and the writes in one script: Redis runs it atomically, so a replica whose lease was taken over
    // between its check and its write cannot overwrite the new owner's record or checkpoint. The keys share no hash slot:
    // this needs a single Redis (or a primary with replicas), not Redis Cluster.
    const string SaveOwnedScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
        if ARGV[4] == '1' then
          redis.call('ZREM', KEYS[4], ARGV[6])
        else
          redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
        end
        redis.call('PEXPIRE', KEYS[4], ARGV[2])
        if ARGV[7] == '1' then
          redis.call('HSET', KEYS[3], 'step', ARGV[8], 'pixels', ARGV[9], 'done', ARGV[10])
          redis.call('PEXPIRE', KEYS[3], ARGV[2])
        end
        return 1
        """;

    public async Task<(JobRecord Job, bool Created)> CreateAsync(JobRecord job, string? idempotencyKey, CancellationToken cancel = default)
    {
        if (idempotencyKey is not null)
        {
            bool claimed = await Db.StringSetAsync(keys.Idempotency(idempotencyKey), job.Id, ttl, When.NotExists);
            if (!claimed)
            {
                string? existing = await Db.StringGetAsync(keys.Idempotency(idempotencyKey));
                if (existing is not null && await GetAsync(existing, cancel) is { } found) return (found, false);
            }
        }
        await UpdateAsync(job, cancel);
        return (job, true);
    }

    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancel = default)
    {
        string? json = await Db.StringGetAsync(keys.Job(id));
        return json is null ? null : JsonSerializer.Deserialize<JobRecord>(json, Json);
    }

    public async Task UpdateAsync(JobRecord job, CancellationToken cancel = default)
    {
        var batch = Db.CreateBatch();
        var tasks = new List<Task>
        {
            batch.StringSetAsync(keys.Job(job.Id), JsonSerializer.Serialize(job, Json), ttl),
            job.IsFinished
                ? batch.SortedSetRemoveAsync(keys.Active, job.Id)
                : batch.SortedSetAddAsync(keys.Active, job.Id, job.CreatedAt.ToUnixTimeMilliseconds()),
            batch.KeyExpireAsync(keys.Active, ttl),
        };
        batch.Execute();
        await Task.WhenAll(tasks);
    }

    public async Task SaveCheckpointAsync(string id, JobCheckpoint checkpoint, CancellationToken cancel = default)
    {
        var key = keys.Checkpoint(id);
        await Db.HashSetAsync(key, [
            new HashEntry("step", checkpoint.Step),
            new HashEntry("pixels", checkpoint.Pixels),
            new HashEntry("done", checkpoint.Done.Select(d => d ? (byte)1 : (byte)0).ToArray()),
        ]);
        await Db.KeyExpireAsync(key, ttl);
    }

    public async Task SaveOwnedAsync(JobRecord job, JobCheckpoint? checkpoint, string owner, CancellationToken cancel = default)
    {
        RedisValue[] args =
        [
            owner, (long)ttl.TotalMilliseconds, JsonSerializer.Serialize(job, Json), job.IsFinished ? 1 : 0,
            job.CreatedAt.ToUnixTimeMilliseconds(), job.Id, checkpoint is null ? 0 : 1,
            checkpoint?.Step ?? 0, checkpoint?.Pixels ?? [], checkpoint is null ? [] : checkpoint.Done.Select(d => d ? (byte)1 : (byte)0).ToArray(),
        ];
        var written = (int)await Db.ScriptEvaluateAsync(SaveOwnedScript, [keys.Lease(job.Id), keys.Job(job.Id), keys.Checkpoint(job.Id), keys.Active], args);
        if (written != 1) throw new LeaseLostException(job.Id, owner);
    }

    public async Task KeepAliveAsync(string id, CancellationToken cancel = default)
    {
        var batch = Db.CreateBatch();
        Task[] tasks =
        [
            batch.KeyExpireAsync(keys.Job(id), ttl), batch.KeyExpireAsync(keys.Checkpoint(id), ttl),
            batch.KeyExpireAsync(keys.Events(id), ttl), batch.KeyExpireAsync(keys.Active, ttl),
        ];
        batch.Execute();
        await Task.WhenAll(tasks);
    }

    public async Task<JobCheckpoint?> LoadCheckpointAsync(string id, CancellationToken cancel = default)
    {
        var entries = (await Db.HashGetAllAsync(keys.Checkpoint(id))).ToDictionary(e => (string)e.Name!, e => e.Value);
        if (!entries.TryGetValue("step", out var step)) return null;
        return new JobCheckpoint((int)step, (byte[])entries["pixels"]!, ((byte[])entries["done"]!).Select(b => b != 0).ToArray());
    }

    public async Task<string> AppendEventAsync(string id, JobEvent evt, CancellationToken cancel = default)
    {
        var key = keys.Events(id);
        var added = await Db.StreamAddAsync(key, "e", JsonSerializer.Serialize(evt with { Id = "" }, Json), maxLength: 1000, useApproximateMaxLength: true);
        await Db.KeyExpireAsync(key, ttl);
        return added!;
    }

    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string id, string? afterId, TimeSpan wait, CancellationToken cancel = default)
    {
        if (afterId is not null && !EventIds.TryParse(afterId, out _)) throw new ArgumentException($"'{afterId}' is not an event id (ms-seq)", nameof(afterId));
        // The shared multiplexer must not block (it pipelines every caller): the reader blocks on a connection of its own and
        // wakes this read when the stream grows; without one, poll briefly.
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            var entries = await Db.StreamRangeAsync(keys.Events(id), afterId is null ? "-" : "(" + afterId, "+", count: 100);
            var left = deadline - DateTime.UtcNow;
            if (entries.Length > 0 || left <= TimeSpan.Zero)
            {
                return entries.Select(e => JsonSerializer.Deserialize<JobEvent>((string)e["e"]!, Json)! with { Id = e.Id! }).ToList();
            }
            if (reader is null) await Task.Delay(50, cancel);
            else await reader.WaitAsync(keys.Events(id), afterId ?? "0-0", left, cancel);
        }
    }

    public async Task<bool> TryLeaseAsync(string id, string owner, TimeSpan leaseTtl, CancellationToken cancel = default) =>
        (int)await Db.ScriptEvaluateAsync(LeaseScript, [keys.Lease(id)], [owner, (long)leaseTtl.TotalMilliseconds]) == 1;

    public Task ReleaseLeaseAsync(string id, string owner, CancellationToken cancel = default) =>
        Db.ScriptEvaluateAsync(ReleaseScript, [keys.Lease(id)], [owner]);

    public async Task<IReadOnlyList<string>> OrphanedJobsAsync(CancellationToken cancel = default)
    {
        var orphans = new List<string>();
        foreach (var id in await ActiveJobsAsync(cancel))
        {
            if (!await Db.KeyExistsAsync(keys.Lease(id))) orphans.Add(id);
        }
        return orphans;
    }

    public Task RequestCancelAsync(string id, CancellationToken cancel = default) => Db.StringSetAsync(keys.Cancel(id), 1, ttl);

    public async Task<bool> IsCancelRequestedAsync(string id, CancellationToken cancel = default) => await Db.KeyExistsAsync(keys.Cancel(id));

    /// <summary>The active set, oldest first, less the ids whose record expired or was lost (those are removed from it).</summary>
    public async Task<IReadOnlyList<string>> ActiveJobsAsync(CancellationToken cancel = default)
    {
        var ids = (await Db.SortedSetRangeByRankAsync(keys.Active)).Select(v => (string)v!).ToList();
        if (ids.Count == 0) return ids;
        var batch = Db.CreateBatch();
        var exists = ids.Select(id => batch.KeyExistsAsync(keys.Job(id))).ToList();
        batch.Execute();
        await Task.WhenAll(exists);
        var gone = ids.Where((_, i) => !exists[i].Result).ToList();
        if (gone.Count > 0) await Db.SortedSetRemoveAsync(keys.Active, gone.Select(g => (RedisValue)g).ToArray());
        return ids.Where((_, i) => exists[i].Result).ToList();
    }
}
