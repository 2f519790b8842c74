using System.Diagnostics;
using FractalMesh.Model.Sampling;

namespace FractalMesh.LevelService;

/// <summary>
/// One served level's sampler with a span and its step latency, batch size and rows recorded (<see cref="LevelTelemetry"/>).
/// Sampling is synchronous on the batcher's thread, so the span is current while the level calls the next one, remote or
/// not, and a remote call carries the trace on.
/// </summary>
sealed class TimedPatchSampler(IPatchSampler inner, int level, LevelTelemetry telemetry) : IPatchSampler
{
    public int PatchSize => inner.PatchSize;

    public byte[] Sample(PatchRequest request, CancellationToken cancel = default)
    {
        using var activity = LevelTelemetry.Source.StartActivity("level.sample");
        activity?.SetTag(LevelTelemetry.LevelTag, level);
        activity?.SetTag("fractalmesh.rows", request.Rows);
        long start = Stopwatch.GetTimestamp();
        try
        {
            var patches = inner.Sample(request, cancel);
            telemetry.LevelSampled(level, request.Rows, Stopwatch.GetElapsedTime(start));
            return patches;
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }
}
