using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using FractalMesh.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace FractalMesh.LevelService;

/// <summary>
/// Admits calls to the served levels and runs them. Every admitted call runs at once as its own asynchronous flow; the
/// calls in flight share forward passes step by step in each level's <see cref="StepScheduler{TIn,TOut}"/>, so a call
/// that arrives while others are mid-generation joins their next pass. At most <see cref="LevelOptions.MaxQueueRows"/>
/// rows are admitted at once; a call that would exceed that is answered RESOURCE_EXHAUSTED at once (backpressure, which
/// callers do not count as a failure). A call runs under its deadline, which it hands to the next level, and its
/// cancellation (or deadline) removes its rows at their next step.
/// </summary>
public sealed class LevelCalls(IOptions<LevelOptions> options, LevelTelemetry telemetry, ILogger<LevelCalls> logger)
{
    readonly LevelOptions options = options.Value;
    int admittedRows;

    /// <summary>Rows admitted and not yet answered: the level's queue depth, which autoscaling follows.</summary>
    public int AdmittedRows => Volatile.Read(ref admittedRows);

    /// <summary>Completes the patches of one validated call (R × 3 × size × size bytes).</summary>
    public async Task<byte[]> SampleAsync(ServedLevels levels, SamplePatchesRequest message, DateTime deadline, CancellationToken cancel)
    {
        using var admission = Admit(message.Level, message.Rows.Count, deadline);
        await StartAsync(message.Level, message.Rows.Count, cancel).ConfigureAwait(false);
        var request = PatchRowCodec.ToPatchRequest(message, message.Rows, levels.Device);
        using (request)
        using (CallDeadline.Use(deadline))
            return await ComputeThread.Process.RunAsync(() => levels.SamplerOf(message.Level).SampleAsync(request, cancel)).ConfigureAwait(false);
    }

    /// <summary>Generates whole images at level 0; <paramref name="onStep"/> sees every level-0 step.</summary>
    public async Task<byte[]> GenerateAsync(ServedLevels levels, IReadOnlyList<ImageRequest> images, SamplingOptions sampling, int startStep,
        Func<LevelStep, ValueTask>? onStep, DateTime deadline, CancellationToken cancel)
    {
        using var admission = Admit(0, images.Count, deadline);
        await StartAsync(0, images.Count, cancel).ConfigureAwait(false);
        var request = FractalSampler.NewRequest(levels.Model, images, sampling, onStep, startStep);
        using (request)
        using (CallDeadline.Use(deadline))
            return await ComputeThread.Process.RunAsync(() => levels.SamplerOf(0).SampleAsync(request, cancel)).ConfigureAwait(false);
    }

    /// <summary>The configured start delay (fault drills), then a log line: the call's rows now enter the level's passes.</summary>
    async Task StartAsync(int level, int rows, CancellationToken cancel)
    {
        if (options.StartDelayMilliseconds > 0) await Task.Delay(options.StartDelayMilliseconds, cancel).ConfigureAwait(false);
        logger.LogDebug("level {Level}: sampling {Rows} rows", level, rows);
    }

    IDisposable Admit(int level, int rows, DateTime deadline)
    {
        if (rows > options.MaxQueueRows)
        {
            telemetry.Rejected(level);
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"the call has {rows} rows but at most {options.MaxQueueRows} may be admitted (Level:MaxQueueRows): split it"));
        }
        int now = Interlocked.Add(ref admittedRows, rows);
        if (now > options.MaxQueueRows)
        {
            Interlocked.Add(ref admittedRows, -rows);
            telemetry.Rejected(level);
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"level {level} is busy: {now - rows} rows are in flight and it admits {options.MaxQueueRows} (Level:MaxQueueRows); retry later"));
        }
        if (logger.IsEnabled(LogLevel.Debug))
            logger.LogDebug("level {Level}: queued {Rows} rows ({Total} in flight, deadline {Deadline})", level, rows, now,
                deadline == DateTime.MaxValue ? "none" : FormattableString.Invariant($"in {(deadline - DateTime.UtcNow).TotalSeconds:F1} s"));
        return new Release(this, rows);
    }

    sealed class Release(LevelCalls owner, int rows) : IDisposable
    {
        int released;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0) Interlocked.Add(ref owner.admittedRows, -rows);
        }
    }
}
