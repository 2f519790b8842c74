using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;

namespace FractalMesh.LevelService;

/// <summary>
/// The level service's traces and metrics (ActivitySource and Meter <c>FractalMesh.LevelService</c>; exported by
/// <c>FractalMesh.Observability</c>). Prometheus names in brackets:
/// <list type="bullet">
/// <item><c>fractalmesh.level.queue.rows</c> [fractalmesh_level_queue_rows]: rows admitted and not yet answered (the queue depth autoscalers follow).</item>
/// <item><c>fractalmesh.level.batch.rows</c> [fractalmesh_level_batch_rows]: rows in one forward pass of a level (the batch size).</item>
/// <item><c>fractalmesh.level.batch.calls</c> [fractalmesh_level_batch_calls]: calls whose rows share one forward pass.</item>
/// <item><c>fractalmesh.level.step.duration</c> [fractalmesh_level_step_duration_seconds]: one level's sampling of a call, all
/// its iterations and the levels below it included, per level (tag <c>fractalmesh.level</c>; the pixel head is the model's level count).</item>
/// <item><c>fractalmesh.level.rows</c> [fractalmesh_level_rows_total]: rows sampled per level; rows/s is its rate.</item>
/// <item><c>fractalmesh.level.rejected</c> [fractalmesh_level_rejected_total]: calls answered RESOURCE_EXHAUSTED (too many rows in flight).</item>
/// </list>
/// </summary>
public sealed class LevelTelemetry
{
    /// <summary>Name of the ActivitySource and the Meter.</summary>
    public const string Name = "FractalMesh.LevelService";
    /// <summary>The tag that says which level a measurement or span belongs to.</summary>
    public const string LevelTag = "fractalmesh.level";

    /// <summary>Spans of batches and level sampling; a batch's parent is its first call's span, the other calls are links.</summary>
    public static readonly ActivitySource Source = new(Name);

    static readonly double[] SecondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
    static readonly int[] RowBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

    readonly Histogram<double> stepDuration;
    readonly Histogram<int> batchRows, batchCalls;
    readonly Counter<long> rows, rejected;
    Func<int>? queuedRows;

    public LevelTelemetry(IMeterFactory meters, IOptions<LevelOptions> options)
    {
        var meter = meters.Create(Name);
        var first = new KeyValuePair<string, object?>(LevelTag, options.Value.FirstLevel);
        meter.CreateObservableGauge("fractalmesh.level.queue.rows", () => new Measurement<int>(queuedRows?.Invoke() ?? 0, first),
            "{row}", "Rows admitted and not yet answered (the level's queue depth, which its autoscaler follows)");
        stepDuration = meter.CreateHistogram("fractalmesh.level.step.duration", "s",
            "One level's sampling of a call: all its iterations, the levels below it included",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        batchRows = meter.CreateHistogram("fractalmesh.level.batch.rows", "{row}", "Rows in one forward pass of a level",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = RowBuckets });
        batchCalls = meter.CreateHistogram("fractalmesh.level.batch.calls", "{call}", "Calls whose rows share one forward pass",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = RowBuckets });
        rows = meter.CreateCounter<long>("fractalmesh.level.rows", "{row}", "Rows sampled");
        rejected = meter.CreateCounter<long>("fractalmesh.level.rejected", "{call}", "Calls answered RESOURCE_EXHAUSTED because the queue was full");
    }

    /// <summary>Where the queue gauge reads the rows admitted.</summary>
    public void ObserveQueue(Func<int> admittedRows) => queuedRows = admittedRows;

    /// <summary>While true (the start-up warm-up), passes and calls are not recorded.</summary>
    public bool Paused { get; set; }

    /// <summary>A forward pass of <paramref name="level"/> ran over <paramref name="passRows"/> rows of <paramref name="calls"/> calls.</summary>
    public void PassRan(int level, int passRows, int calls)
    {
        if (Paused) return;
        var tag = new KeyValuePair<string, object?>(LevelTag, level);
        batchRows.Record(passRows, tag);
        batchCalls.Record(calls, tag);
    }

    /// <summary>A level sampled a call of <paramref name="callRows"/> rows in <paramref name="elapsed"/>.</summary>
    public void LevelSampled(int level, int callRows, TimeSpan elapsed)
    {
        if (Paused) return;
        var tag = new KeyValuePair<string, object?>(LevelTag, level);
        stepDuration.Record(elapsed.TotalSeconds, tag);
        rows.Add(callRows, tag);
    }

    /// <summary>A call of <paramref name="level"/> was turned away because the queue was full.</summary>
    public void Rejected(int level) => rejected.Add(1, new KeyValuePair<string, object?>(LevelTag, level));
}
