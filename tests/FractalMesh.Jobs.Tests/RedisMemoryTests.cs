using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Jobs.Tests;

/// <summary>
/// Redis memory of one typical job (deploy/README.md quotes these numbers): four 32×32 images of the demo model, 16
/// level-0 steps, a 4 KiB preview per step (random bytes: PNG never compresses worse), four 2 KiB finished PNGs.
/// </summary>
public sealed class RedisMemoryTests(RedisFixture redis, ITestOutputHelper output) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task ATypicalJobTakesUnderAQuarterMegabyte()
    {
        const int images = 4, size = 32, steps = 16;
        string prefix = "mem" + Guid.NewGuid().ToString("N")[..6];
        var keys = new RedisKeys(prefix);
        var store = new RedisJobStore(redis.Multiplexer, TimeSpan.FromMinutes(5), prefix);
        var random = new Random(1);
        byte[] Bytes(int n) { var b = new byte[n]; random.NextBytes(b); return b; }

        var job = new JobRecord { Id = "m", RequestJson = "{\"classLabels\":[1,2,3,4],\"params\":{\"cfg\":4,\"temperature\":1}}", Steps = steps, CreatedAt = DateTimeOffset.UtcNow };
        await store.CreateAsync(job, "idem-key");
        await store.AppendEventAsync("m", new JobEvent("", JobStatus.Queued, 0, steps, 0, null, null, 1, "gw-1"));
        for (int step = 1; step <= steps; step++)
        {
            await store.SaveCheckpointAsync("m", new JobCheckpoint(step, Bytes(images * 3 * size * size), new bool[images * size * size]));
            await store.AppendEventAsync("m", new JobEvent("", JobStatus.Running, step, steps, step / (double)steps, Bytes(4096), null, 0, "gw-1"));
        }
        await store.UpdateAsync(job with { Status = JobStatus.Done, Step = steps, Images = [.. Enumerable.Range(0, images).Select(i => new JobImage(Bytes(2048), i, i))] });
        await store.AppendEventAsync("m", new JobEvent("", JobStatus.Done, steps, steps, 1, null, null, 0, "gw-1"));

        var db = redis.Multiplexer.GetDatabase();
        long total = 0;
        foreach (var key in new[] { keys.Job("m"), keys.Checkpoint("m"), keys.Events("m"), keys.Idempotency("idem-key") })
        {
            long bytes = (long)await db.ExecuteAsync("MEMORY", "USAGE", key, "SAMPLES", "0");
            output.WriteLine($"{key}: {bytes} bytes");
            total += bytes;
        }
        output.WriteLine($"total: {total} bytes");
        Assert.InRange(total, 16 * 4096, 256 * 1024);
    }
}
