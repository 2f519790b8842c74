namespace FractalMesh.Jobs;

/// <summary>What a <see cref="JobRunner"/> did since it started; incremented from any thread.</summary>
sealed class JobCounters
{
    long done, failed, cancelled, takenOver, interrupted;

    public void Finished(JobStatus status) =>
        Interlocked.Increment(ref status == JobStatus.Done ? ref done : ref status == JobStatus.Failed ? ref failed : ref cancelled);
    public void TakenOver() => Interlocked.Increment(ref takenOver);
    public void Interrupted() => Interlocked.Increment(ref interrupted);

    public JobRunnerCounts Read() => new(Interlocked.Read(ref done), Interlocked.Read(ref failed), Interlocked.Read(ref cancelled),
        Interlocked.Read(ref takenOver), Interlocked.Read(ref interrupted));
}
