using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace FractalMesh.LevelService;

/// <summary>
/// Loads the checkpoint in the background once the host has started, so that liveness answers at once and readiness
/// turns SERVING when the model is in memory. A model that cannot be loaded stops the process
/// with exit code 1 and the reason in the log.
/// </summary>
public sealed class ModelLoader(IOptions<LevelOptions> options, LevelCalls calls, LevelTelemetry telemetry, IHostApplicationLifetime lifetime,
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
            telemetry.ObserveQueue(() => calls.AdmittedRows);
            long parameters = levels.Model.parameters().Sum(p => p.numel());
            long bytes = levels.Model.parameters().Sum(p => p.numel() * p.element_size());
            var warm = System.Diagnostics.Stopwatch.StartNew();
            telemetry.Paused = true;
            // On this loader's own thread, before readiness: no call waits on it. Not a served call: no metrics.
            try
            {
                levels.WarmUpAsync().GetAwaiter().GetResult();
                logger.LogInformation("warmed up in {Seconds:F1} s", warm.Elapsed.TotalSeconds);
            }
            finally { telemetry.Paused = false; }
            if (logger.IsEnabled(LogLevel.Debug))
                foreach (var (level, statistics) in levels.PassStatistics)
                    statistics.Passed += (rows, callCount) => logger.LogDebug("level {Level}: pass of {Rows} rows of {Calls} calls", level, rows, callCount);
            served = levels;
            logger.LogInformation("ready: serving {Levels}; loaded {Parameters:N0} parameters ({Megabytes:F1} MB)", levels.Description, parameters, bytes / 1e6);
        }
        catch (Exception e)
        {
            logger.LogCritical(e, "the model could not be loaded: {Reason}", e.Message);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }
    }, stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Readiness: the model is loaded.</summary>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(served is { } levels
            ? HealthCheckResult.Healthy($"serving {levels.Description}")
            : HealthCheckResult.Unhealthy("the model is loading"));

    public override void Dispose()
    {
        served?.Dispose();
        base.Dispose();
    }
}
