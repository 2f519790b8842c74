using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace FractalMesh.Jobs.Tests;

/// <summary>Redis going away degrades the store, fails nothing, and checkpointing resumes when Redis returns.</summary>
public sealed class DegradableJobStoreTests
{
    [Fact]
    public async Task RedisDownMeansDegradedNotFailedAndItRecovers()
    {
        using var server = new RedisServer();
        using var mux = server.Connect();
        var redis = new RedisJobStore(mux, TimeSpan.FromMinutes(5));
        var store = new DegradableJobStore(redis, new InMemoryJobStore());
        var job = new JobRecord { Id = "d", RequestJson = "{}", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow };
        await store.CreateAsync(job, "k");
        Assert.False(store.Degraded);

        server.Stop();
        await store.SaveCheckpointAsync("d", new JobCheckpoint(1, [1, 2, 3], [true]));   // does not throw
        await store.AppendEventAsync("d", new JobEvent("", JobStatus.Running, 1, 4, 0.25, null, null));
        Assert.True(store.Degraded);
        Assert.Equal(JobStatus.Queued, (await store.GetAsync("d"))!.Status);             // served from memory
        Assert.Single(await store.ReadEventsAsync("d", null, TimeSpan.Zero));

        server.Start();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (store.Degraded && DateTime.UtcNow < deadline)
        {
            await store.SaveCheckpointAsync("d", new JobCheckpoint(2, [4, 5, 6], [false]));
            if (store.Degraded) await Task.Delay(200);
        }
        Assert.False(store.Degraded);
        var fromRedis = await redis.LoadCheckpointAsync("d");
        Assert.Equal(2, fromRedis!.Step);                                                  // checkpointing resumed
    }

    [Fact]
    public async Task FinishedJobsAreForgottenAfterTheRetentionSoMemoryStaysFlat()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var store = new InMemoryJobStore(clock, TimeSpan.FromMinutes(1));
        for (int i = 0; i < 1000; i++)
        {
            var job = new JobRecord { Id = $"j{i}", RequestJson = "{}", CreatedAt = clock.GetUtcNow(), UpdatedAt = clock.GetUtcNow() };
            await store.CreateAsync(job, $"k{i}");
            await store.UpdateAsync(job with { Status = JobStatus.Done });
            clock.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.InRange(store.Count, 55, 65);
    }
}
