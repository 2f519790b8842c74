namespace FractalMesh.Jobs;

/// <summary>
/// What the <see cref="JobRunner"/> needs from whoever knows how to generate (the gateway): run one job, from scratch or
/// from a checkpoint, reporting every level-0 step.
/// </summary>
public interface IJobExecutor
{
    /// <summary>
    /// Runs <paramref name="job"/> (its <see cref="JobRecord.RequestJson"/>) from <paramref name="resumeFrom"/> when given,
    /// and returns the finished images. <paramref name="onStep"/> is called synchronously after every level-0 step, on the
    /// thread that generates, so that the step's checkpoint is stored before the next step begins. Cancelling stops the
    /// work within one step of any level and throws <see cref="OperationCanceledException"/>. Resuming from a checkpoint
    /// must give the same images, byte for byte, as an uninterrupted run (docs/ARCHITECTURE.md, The level contract: counter-based randomness).
    /// </summary>
    Task<IReadOnlyList<JobImage>> RunAsync(JobRecord job, JobCheckpoint? resumeFrom, Func<JobStepReport, ValueTask> onStep, CancellationToken cancel);
}

/// <summary>One finished level-0 step: the state to resume from, progress, and a preview for watchers.</summary>
/// <param name="Checkpoint">The partial images after the step; its <see cref="JobCheckpoint.Step"/> counts the steps completed.</param>
/// <param name="Steps">Level-0 steps in all.</param>
/// <param name="DoneFraction">Share of pixels known or generated (0..1).</param>
/// <param name="PreviewPng">A picture of the partial images, or null.</param>
public sealed record JobStepReport(JobCheckpoint Checkpoint, int Steps, double DoneFraction, byte[]? PreviewPng);

/// <summary>
/// Thrown by an executor when a job's run was cut short by something that passes (a level service restarting, a
/// deadline under overload): the runner runs the job again from its last checkpoint after a pause, instead of failing it.
/// </summary>
public sealed class JobInterruptedException(string reason, Exception? inner = null) : Exception(reason, inner);

/// <summary>The replica's queue is full: the submit is refused (RESOURCE_EXHAUSTED / HTTP 429 at the gateway).</summary>
public sealed class JobQueueFullException(int limit) : Exception($"{limit} jobs are already queued on this replica; retry later")
{
    public int Limit { get; } = limit;
}

/// <summary>Settings of a <see cref="JobRunner"/>.</summary>
public sealed record JobRunnerOptions
{
    /// <summary>This replica's name in leases and records; unique among the replicas sharing a store.</summary>
    public string Owner { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>
    /// How long a lease lives without renewal: after its owner dies, another replica takes the job over within about this
    /// long. Renewed every third of it.
    /// </summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Jobs running at once on this replica.</summary>
    public int MaxRunning { get; init; } = 1;

    /// <summary>Jobs waiting on this replica; a submit beyond it throws <see cref="JobQueueFullException"/>.</summary>
    public int MaxQueued { get; init; } = 64;

    /// <summary>
    /// Runs again from the last checkpoint after a <see cref="JobInterruptedException"/>: up to this many times in a row
    /// without a level-0 step completing in between (pausing 250 ms, doubling up to 8 s), then the job fails. Default 8.
    /// </summary>
    public int MaxInterruptionsWithoutProgress { get; init; } = 8;

    /// <summary>How often an idle replica looks for orphaned jobs (whose owner's lease ran out).</summary>
    public TimeSpan OrphanScanInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Lease renewal and cancel-flag polling: a third of the lease, at most half a second (remote cancels are seen this fast).</summary>
    public TimeSpan Heartbeat => TimeSpan.FromTicks(Math.Min(LeaseTtl.Ticks / 3, TimeSpan.FromMilliseconds(500).Ticks));
}
