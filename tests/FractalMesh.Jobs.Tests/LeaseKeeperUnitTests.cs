using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace FractalMesh.Jobs.Tests;

/// <summary>The lease keeper's heartbeat, one beat at a time, on the in-memory store.</summary>
public sealed class LeaseKeeperUnitTests
{
    static readonly JobRunnerOptions Options = new() { Owner = "r1", LeaseTtl = TimeSpan.FromMinutes(1) };

    static LeaseKeeper Keeper(IJobStore store, OwnedJobs jobs) => new(store, jobs, Options, TimeProvider.System, NullLogger.Instance,
        new JobCounters(), _ => Task.CompletedTask, (_, _) => Task.CompletedTask);

    /// <summary>Whether another replica could take the job's lease now (it takes it if so).</summary>
    static Task<bool> FreeAsync(IJobStore store, string id) => store.TryLeaseAsync(id, "r2", Options.LeaseTtl);

    [Fact]
    public async Task ABeatRenewsTheLeasesOfTheJobsHeld()
    {
        var store = new InMemoryJobStore();
        var jobs = new OwnedJobs();
        var job = new OwnedJob("held", DateTimeOffset.UtcNow);
        jobs.Enqueue(job);
        Assert.True(await store.TryLeaseAsync(job.Id, Options.Owner, Options.LeaseTtl));

        await Keeper(store, jobs).BeatAsync(jobs.Snapshot());

        Assert.False(await FreeAsync(store, job.Id));
        Assert.Equal(StopReason.None, job.Reason);
    }

    [Fact]
    public async Task ABeatThatRenewsALeaseItsJobJustReleasedReleasesItAgain()
    {
        var store = new InMemoryJobStore();
        var jobs = new OwnedJobs();
        var job = new OwnedJob("finishing", DateTimeOffset.UtcNow);
        jobs.Enqueue(job);
        Assert.True(await store.TryLeaseAsync(job.Id, Options.Owner, Options.LeaseTtl));

        // The beat took its snapshot while the job was held; then the job finished and released its lease as JobExecution
        // does (marked released, then the delete); then the beat reaches it and its take-or-renew takes the free lease.
        var snapshot = jobs.Snapshot();
        job.Released = true;
        await store.ReleaseLeaseAsync(job.Id, Options.Owner);
        jobs.Remove(job.Id);

        await Keeper(store, jobs).BeatAsync(snapshot);

        // No lease outlives its job: another replica's scan could take it at once.
        Assert.True(await FreeAsync(store, job.Id));
    }
}
