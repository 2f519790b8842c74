using StackExchange.Redis;
using Xunit;

namespace FractalMesh.Jobs.Tests;

/// <summary>
/// Against a real Redis: every key has a bounded life while held jobs stay visible, and a replica that lost a job's lease
/// cannot write its record or checkpoint.
/// </summary>
public sealed class RedisKeyLifetimeTests : IClassFixture<RedisFixture>
{
    readonly RedisFixture redis;
    public RedisKeyLifetimeTests(RedisFixture redis) => this.redis = redis;

    static string Prefix() => "t" + Guid.NewGuid().ToString("N")[..8];

    static JobRecord Job(string id) => new() { Id = id, RequestJson = "{}", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow, Steps = 4 };

    public static TheoryData<string> Stores => new() { "redis", "memory" };

    [Theory, MemberData(nameof(Stores))]
    public async Task AStaleOwnersWriteIsRefusedAndChangesNothing(string kind)
    {
        IJobStore store = kind == "redis" ? new RedisJobStore(redis.Multiplexer, TimeSpan.FromMinutes(5), Prefix()) : new InMemoryJobStore();
        await store.CreateAsync(Job("s"), null);
        var lease = TimeSpan.FromSeconds(2);                                      // a loaded machine's pause does not end it before the first save
        Assert.True(await store.TryLeaseAsync("s", "gw-1", lease));
        await store.SaveOwnedAsync(Job("s") with { Step = 1 }, new JobCheckpoint(1, [1], [true]), "gw-1");

        await Task.Delay(lease * 1.25);                                           // gw-1 paused past its lease
        Assert.True(await store.TryLeaseAsync("s", "gw-2", TimeSpan.FromMinutes(1)));
        await store.SaveOwnedAsync(Job("s") with { Step = 2, Owner = "gw-2" }, new JobCheckpoint(2, [2], [true]), "gw-2");

        await Assert.ThrowsAsync<LeaseLostException>(() =>
            store.SaveOwnedAsync(Job("s") with { Step = 3, Owner = "gw-1" }, new JobCheckpoint(3, [3], [true]), "gw-1"));
        await Assert.ThrowsAsync<LeaseLostException>(() => store.SaveOwnedAsync(Job("s") with { Status = JobStatus.Done }, null, "gw-1"));
        var record = await store.GetAsync("s");
        Assert.Equal((2, "gw-2", JobStatus.Queued), (record!.Step, record.Owner, record.Status));
        Assert.Equal(2, (await store.LoadCheckpointAsync("s"))!.Step);
    }

    [Fact]
    public async Task TheActiveSetDropsIdsWithoutARecordAndExpires()
    {
        string prefix = Prefix();
        var keys = new RedisKeys(prefix);
        var db = redis.Multiplexer.GetDatabase();
        var store = new RedisJobStore(redis.Multiplexer, TimeSpan.FromMinutes(5), prefix);
        await store.CreateAsync(Job("kept"), null);
        await store.CreateAsync(Job("lost"), null);
        await db.KeyDeleteAsync(keys.Job("lost"));                                // expired, or lost with Redis

        Assert.Equal(["kept"], await store.ActiveJobsAsync());
        Assert.Null(await db.SortedSetScoreAsync(keys.Active, "lost"));
        Assert.Equal(["kept"], await store.OrphanedJobsAsync());
        var ttl = await db.KeyTimeToLiveAsync(keys.Active);
        Assert.True(ttl is { } t && t > TimeSpan.Zero && t <= TimeSpan.FromMinutes(5), $"TTL of the active set: {ttl}");
    }

    /// <summary>Runs the first job until released, so that the second waits in the queue.</summary>
    sealed class HeldExecutor : IJobExecutor
    {
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<IReadOnlyList<JobImage>> RunAsync(JobRecord job, JobCheckpoint? resumeFrom, Func<JobStepReport, ValueTask> onStep, CancellationToken cancel)
        {
            await Release.Task.WaitAsync(cancel);
            await onStep(new JobStepReport(new JobCheckpoint(1, [1], [true]), 1, 1, null));
            return [new JobImage([42], 7, 1)];
        }
    }

    [Fact]
    public async Task AQueuedJobsKeysOutliveTheirTtlWhileItsOwnerLives()
    {
        string prefix = Prefix();
        var keys = new RedisKeys(prefix);
        var db = redis.Multiplexer.GetDatabase();
        // Lifetimes several heartbeats (500 ms) long, so a loaded machine that delays one beat does not lose a lease or a key.
        var ttl = TimeSpan.FromSeconds(2);
        var store = new RedisJobStore(redis.Multiplexer, ttl, prefix);
        var executor = new HeldExecutor();
        await using var runner = new JobRunner(store, executor, new JobRunnerOptions { Owner = "r1", LeaseTtl = TimeSpan.FromMilliseconds(1500) });
        runner.Start();
        string running = (await runner.SubmitAsync("{}", 1, null)).Job.Id;
        string queued = (await runner.SubmitAsync("{}", 1, null)).Job.Id;

        await Task.Delay(ttl * 2.5);                                              // well past the TTL of every key written at submit
        Assert.Equal(1, runner.QueuedCount);
        Assert.True(await db.KeyExistsAsync(keys.Job(queued)), "the queued job's record expired while queued");
        Assert.True(await db.KeyExistsAsync(keys.Events(queued)), "the queued job's events expired while queued");
        Assert.True(await db.KeyExistsAsync(keys.Active), "the active set expired while jobs were held");
        Assert.Equal([running, queued], await store.ActiveJobsAsync());

        executor.Release.TrySetResult();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline && (await store.GetAsync(queued))?.IsFinished != true) await Task.Delay(20);
        Assert.Equal(JobStatus.Done, (await store.GetAsync(queued))!.Status);
        Assert.Empty(await store.ActiveJobsAsync());
    }

    [Fact]
    public async Task AWaitingReadBlocksOnTheStreamInsteadOfPolling()
    {
        string prefix = Prefix();
        var keys = new RedisKeys(prefix);
        using var blocking = redis.Server.Connect();
        await using var reader = new RedisStreamReader(blocking, redis.Multiplexer, keys.Wake("r1"), TimeSpan.FromMilliseconds(300));
        var store = new RedisJobStore(redis.Multiplexer, TimeSpan.FromMinutes(5), prefix, reader);
        await store.CreateAsync(Job("w"), null);
        string first = await store.AppendEventAsync("w", new JobEvent("", JobStatus.Running, 0, 4, 0, null, null));
        using var admin = ConnectionMultiplexer.Connect(new ConfigurationOptions { EndPoints = { redis.Server.Endpoint }, AllowAdmin = true });
        var db = admin.GetDatabase();
        long XRangeCalls() => ((string)db.Execute("INFO", "commandstats")!).Split('\n').Where(l => l.StartsWith("cmdstat_xrange:"))
            .Select(l => long.Parse(l.Split(':')[1].Split(',')[0].Split('=')[1])).FirstOrDefault();

        long before = XRangeCalls();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var waiting = store.ReadEventsAsync("w", first, TimeSpan.FromSeconds(10));
        await Task.Delay(1500);
        Assert.False(waiting.IsCompleted);
        await store.AppendEventAsync("w", new JobEvent("", JobStatus.Done, 4, 4, 1, null, null));
        var next = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(JobStatus.Done, Assert.Single(next).Status);
        Assert.True(waited.Elapsed < TimeSpan.FromSeconds(6), $"woken after {waited.Elapsed}");          // by the append, not the 10 s wait running out
        long calls = XRangeCalls() - before;
        Assert.True(calls <= 4, $"{calls} XRANGE calls in 1.5 s of waiting: it polled");   // polling every 50 ms: about 30
    }
}
