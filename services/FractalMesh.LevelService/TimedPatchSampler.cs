using System.Diagnostics;
using FractalMesh.Model.Sampling;

namespace FractalMesh.LevelService;

/// <summary>
/// One served level's sampler with a span and its step latency, batch size and rows recorded (<see cref="LevelTelemetry"/>).
/// The span flows with the call's asynchronous work, so it is current while the level calls the next one, remote or not,
/// and a remote call carries the trace on.
/// </summary>
sealed class TimedPatchSampler(IPatchSampler inner, int level, LevelTelemetry telemetry) : IPatchSampler
{
    public int PatchSize => inner.PatchSize;

    public async Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
    {
        using var activity = LevelTelemetry.Source.StartActivity("level.sample");
        activity?.SetTag(LevelTelemetry.LevelTag, level);
        activity?.SetTag("fractalmesh.rows", request.Rows);
        long start = Stopwatch.GetTimestamp();
        try
        {
            var patches = await inner.SampleAsync(request, cancel).ConfigureAwait(false);
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
