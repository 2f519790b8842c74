using Xunit;

namespace FractalMesh.Jobs.Tests;

/// <summary>The job-store contract, against a real Redis and against the in-memory store.</summary>
public sealed class JobStoreTests : IClassFixture<RedisFixture>
{
    readonly RedisFixture redis;
    public JobStoreTests(RedisFixture redis) => this.redis = redis;

    public static TheoryData<string> Stores => new() { "redis", "memory" };

    IJobStore Store(string kind) => kind == "redis"
        ? new RedisJobStore(redis.Multiplexer, TimeSpan.FromMinutes(5), prefix: "t" + Guid.NewGuid().ToString("N")[..8])
        : new InMemoryJobStore();

    static JobRecord Job(string id) => new() { Id = id, RequestJson = "{\"classes\":[1]}", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow, Steps = 8 };

    [Theory, MemberData(nameof(Stores))]
    public async Task IdempotencyKeyReturnsTheSameJob(string kind)
    {
        var store = Store(kind);
        var (first, created) = await store.CreateAsync(Job("a"), "key-1");
        var (second, createdAgain) = await store.CreateAsync(Job("b"), "key-1");
        Assert.True(created);
        Assert.False(createdAgain);
        Assert.Equal("a", second.Id);
        Assert.Null(await store.GetAsync("b"));
        Assert.Equal(first.RequestJson, (await store.GetAsync("a"))!.RequestJson);
    }

    [Theory, MemberData(nameof(Stores))]
    public async Task RecordsCheckpointsAndFinishedImagesRoundTrip(string kind)
    {
        var store = Store(kind);
        await store.CreateAsync(Job("j"), null);
        var pixels = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        var done = Enumerable.Range(0, 100).Select(i => i % 3 == 0).ToArray();
        await store.SaveCheckpointAsync("j", new JobCheckpoint(3, pixels, done));
        var ckpt = await store.LoadCheckpointAsync("j");
        Assert.Equal(3, ckpt!.Step);
        Assert.Equal(pixels, ckpt.Pixels);
        Assert.Equal(done, ckpt.Done);
        await store.UpdateAsync(Job("j") with { Status = JobStatus.Done, Step = 8, Images = [new JobImage([1, 2, 3], 42, 2)] });
        var job = await store.GetAsync("j");
        Assert.Equal(JobStatus.Done, job!.Status);
        Assert.Equal(42, job.Images[0].Seed);
        Assert.Equal(new byte[] { 1, 2, 3 }, job.Images[0].Png);
        Assert.Empty(await store.ActiveJobsAsync());
    }

    [Theory, MemberData(nameof(Stores))]
    public async Task EventsAreReadInOrderAfterAnId(string kind)
    {
        var store = Store(kind);
        await store.CreateAsync(Job("e"), null);
        for (int i = 0; i < 3; i++) await store.AppendEventAsync("e", new JobEvent("", JobStatus.Running, i, 8, i / 8.0, null, null));
        var all = await store.ReadEventsAsync("e", null, TimeSpan.Zero);
        Assert.Equal([0, 1, 2], all.Select(e => e.Step));
        var after = await store.ReadEventsAsync("e", all[0].Id, TimeSpan.Zero);
        Assert.Equal([1, 2], after.Select(e => e.Step));
        var waiting = store.ReadEventsAsync("e", all[2].Id, TimeSpan.FromSeconds(5));
        await Task.Delay(100);
        await store.AppendEventAsync("e", new JobEvent("", JobStatus.Done, 8, 8, 1, null, null));
        var next = await waiting;
        Assert.Equal(JobStatus.Done, Assert.Single(next).Status);
    }

    [Theory, MemberData(nameof(Stores))]
    public async Task LeasesAreExclusiveUntilTheyRunOut(string kind)
    {
        var store = Store(kind);
        await store.CreateAsync(Job("l"), null);
        Assert.Contains("l", await store.OrphanedJobsAsync());
        // A lease of 2 s: long enough that a loaded machine's pause between these calls does not end it early.
        var lease = TimeSpan.FromSeconds(2);
        Assert.True(await store.TryLeaseAsync("l", "gw-1", lease));
        Assert.True(await store.TryLeaseAsync("l", "gw-1", lease));                               // renewal
        Assert.False(await store.TryLeaseAsync("l", "gw-2", TimeSpan.FromSeconds(5)));
        Assert.DoesNotContain("l", await store.OrphanedJobsAsync());
        await Task.Delay(lease * 1.25);
        Assert.Contains("l", await store.OrphanedJobsAsync());                                   // owner stopped renewing
        Assert.True(await store.TryLeaseAsync("l", "gw-2", TimeSpan.FromSeconds(5)));            // takeover
        await store.ReleaseLeaseAsync("l", "gw-1");                                              // not the owner: no effect
        Assert.False(await store.TryLeaseAsync("l", "gw-1", TimeSpan.FromSeconds(5)));
    }

    [Theory, MemberData(nameof(Stores))]
    public async Task CancelRequestsAndQueueOrder(string kind)
    {
        var store = Store(kind);
        await store.CreateAsync(Job("q1") with { CreatedAt = DateTimeOffset.UtcNow.AddSeconds(-2) }, null);
        await store.CreateAsync(Job("q2"), null);
        Assert.Equal(["q1", "q2"], await store.ActiveJobsAsync());
        Assert.False(await store.IsCancelRequestedAsync("q2"));
        await store.RequestCancelAsync("q2");
        Assert.True(await store.IsCancelRequestedAsync("q2"));
    }
}

public sealed class RedisFixture : IDisposable
{
    public RedisServer Server { get; } = new();
    public StackExchange.Redis.ConnectionMultiplexer Multiplexer { get; }
    public RedisFixture() => Multiplexer = Server.Connect();
    public void Dispose() { Multiplexer.Dispose(); Server.Dispose(); }
}
