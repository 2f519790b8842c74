using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace FractalMesh.LevelService;

/// <summary>
/// Loads the checkpoint in the background once the host has started, so that liveness answers at once and readiness
/// turns SERVING when the model is in memory; then starts the batcher. A model that cannot be loaded stops the process
/// with exit code 1 and the reason in the log.
/// </summary>
public sealed class ModelLoader(IOptions<LevelOptions> options, RowBatcher batcher, LevelTelemetry telemetry, IHostApplicationLifetime lifetime,
    ILogger<ModelLoader> logger)
    : BackgroundService, IHealthCheck
{
    volatile ServedLevels? served;

    /// <summary>The loaded levels, or null while loading.</summary>
    public ServedLevels? Served => served;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Factory.StartNew(() =>
    {
        var o = options.Value;
        try
        {
            logger.LogInformation("loading {Model} on {Device}", o.Model, o.Device);
            var levels = ServedLevels.Load(o, telemetry);
            batcher.Start(levels);
            served = levels;
            logger.LogInformation("ready: serving {Levels}", levels.Description);
        }
        catch (Exception e)
        {
            logger.LogCritical(e, "the model could not be loaded: {Reason}", e.Message);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }
    }, stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Readiness: the model is loaded and the batcher runs.</summary>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(served is { } levels
            ? HealthCheckResult.Healthy($"serving {levels.Description}")
            : HealthCheckResult.Unhealthy("the model is loading"));

    public override void Dispose()
    {
        batcher.Dispose();
        served?.Dispose();
        base.Dispose();
    }
}
