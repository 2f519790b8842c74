using System.Diagnostics.Metrics;
using FractalMesh.Gateway.Jobs;
using FractalMesh.Gateway.Security;
using FractalMesh.Jobs;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace FractalMesh.Gateway.Extensions;

/// <summary>
/// Jobs (docs/ARCHITECTURE.md, State in Redis): the job store (Redis through one shared multiplexer, degrading to memory while Redis is away; or
/// memory alone in the embedded mode), the <see cref="JobRunner"/> on top of the generator, and their health and metrics.
/// </summary>
public static class JobExtensions
{
    public static IServiceCollection AddJobs(this IServiceCollection services)
    {
        services.AddSingleton<JobStoreConnection>();
        // Every job records the principal that submitted it (docs/ARCHITECTURE.md, Security).
        services.AddSingleton<IJobStore>(sp => new SubmitterJobStore(sp.GetRequiredService<JobStoreConnection>().Store));
        services.AddSingleton<ImageJobExecutor>();
        services.AddSingleton<WatcherGate>();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<GatewayOptions>>().Value;
            var defaults = new JobRunnerOptions();
            return new JobRunner(sp.GetRequiredService<IJobStore>(), sp.GetRequiredService<ImageJobExecutor>(), new JobRunnerOptions
            {
                Owner = string.IsNullOrWhiteSpace(o.ReplicaId) ? defaults.Owner : o.ReplicaId,
                LeaseTtl = TimeSpan.FromSeconds(o.JobLeaseSeconds),
                MaxRunning = o.MaxRunningJobs,
                MaxQueued = o.MaxQueuedJobs,
            }, sp.GetRequiredService<ILogger<JobRunner>>());
        });
        // Registered after the model warm-up, so jobs (queued here or taken over) start only once the model is loaded.
        services.AddHostedService<JobRunnerHost>();
        services.AddSingleton<JobMetrics>();
        services.AddHealthChecks().AddCheck<JobStoreHealthCheck>("jobs");
        return services;
    }

    /// <summary>Starts the runner with the host; on shutdown interrupts running jobs and frees their leases so another replica resumes them at once.</summary>
    sealed class JobRunnerHost(JobRunner runner, JobMetrics metrics) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            _ = metrics; // created with the host so the gauges exist from the start
            runner.Start();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => runner.StopAsync();
    }
}

/// <summary>
/// The job store the configuration asks for: with <c>Gateway:Redis</c> (and <c>Gateway:RedisUser</c>, <c>RedisPassword</c>,
/// <c>RedisTls…</c>), one shared <see cref="ConnectionMultiplexer"/> (AbortOnConnectFail off: the gateway starts and serves
/// while Redis is away; commands fail fast instead of queuing, so generation never waits on a missing Redis; refused
/// credentials stop the start) behind a <see cref="DegradableJobStore"/>; without it, memory alone.
/// </summary>
public sealed class JobStoreConnection : IDisposable
{
    public JobStoreConnection(IOptions<GatewayOptions> options, ILogger<JobStoreConnection> logger)
    {
        var o = options.Value;
        var retention = TimeSpan.FromMinutes(o.JobRetentionMinutes);
        if (string.IsNullOrWhiteSpace(o.Redis))
        {
            Store = new InMemoryJobStore(retention: retention);
            Description = "in-memory job store (no Gateway:Redis; jobs do not survive this process)";
            return;
        }
        var settings = o.RedisSettings(); // validated at start
        var config = settings.ToConfiguration();
        // Redis away: degraded, reconnecting. Redis refusing the credentials: a RedisCredentialsException, and no start.
        Multiplexer = RedisConnection.Connect(settings, "fractalmesh-gateway");
        // Watchers block on the event streams through one reader on a connection of its own (the shared one must never block).
        var blockingConfig = settings.ToConfiguration();
        blockingConfig.ClientName = "fractalmesh-gateway-xread";
        blockingConfig.AsyncTimeout = blockingConfig.SyncTimeout = 5000;
        BlockingMultiplexer = ConnectionMultiplexer.Connect(blockingConfig);
        var keys = new RedisKeys(o.RedisKeyPrefix);
        string replica = string.IsNullOrWhiteSpace(o.ReplicaId) ? Guid.NewGuid().ToString("N") : o.ReplicaId;
        StreamReader = new RedisStreamReader(BlockingMultiplexer, Multiplexer, keys.Wake(replica), logger: logger);
        Degradable = new DegradableJobStore(new RedisJobStore(Multiplexer, retention, o.RedisKeyPrefix, StreamReader), new InMemoryJobStore(retention: retention));
        Store = Degradable;
        Description = $"Redis at {string.Join(",", config.EndPoints)}";
        if (!Multiplexer.IsConnected) logger.LogWarning("Redis at {Endpoints} is not reachable: jobs run without durable checkpoints until it is", Description);
    }

    public IJobStore Store { get; }
    public IConnectionMultiplexer? Multiplexer { get; }
    /// <summary>The connection the stream reader blocks on (<c>XREAD BLOCK</c>); nothing else uses it.</summary>
    public IConnectionMultiplexer? BlockingMultiplexer { get; }
    public RedisStreamReader? StreamReader { get; }
    public DegradableJobStore? Degradable { get; }
    public string Description { get; }

    /// <summary>Redis configured but unreachable (or its last call failed): jobs run on, without durable checkpoints or takeover.</summary>
    public bool Degraded => Degradable is not null && (Degradable.Degraded || Multiplexer is { IsConnected: false });

    public void Dispose()
    {
        StreamReader?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        BlockingMultiplexer?.Dispose();
        Multiplexer?.Dispose();
    }
}

/// <summary>
/// Readiness of the job store: Healthy with Redis or in memory, Degraded while Redis is configured but away (readiness
/// still answers 200: requests keep being served), with the runner's queue in the data.
/// </summary>
sealed class JobStoreHealthCheck(JobStoreConnection connection, JobRunner runner) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>
        {
            ["store"] = connection.Multiplexer is null ? "memory" : "redis",
            ["degraded"] = connection.Degraded,
            ["queuedJobs"] = runner.QueuedCount,
            ["runningJobs"] = runner.RunningCount,
            ["replica"] = runner.Owner,
        };
        return Task.FromResult(connection.Degraded
            ? HealthCheckResult.Degraded($"{connection.Description} is unreachable: jobs run without durable checkpoints and no replica takes over another's jobs until it returns", data: data)
            : HealthCheckResult.Healthy(connection.Description, data));
    }
}

/// <summary>
/// The gateway's meter <c>FractalMesh.Gateway</c> (exported by <c>AddFractalMeshTelemetry</c>; also readable with
/// dotnet-counters): jobs on this replica by state (<c>fractalmesh.gateway.jobs.queued</c>, <c>.running</c>, and
/// <c>.finished</c> counted by final state), resumptions (<c>fractalmesh.gateway.jobs.resumptions</c>: a job taken over from
/// a dead replica, or a run resumed from its checkpoint after a level below failed), and
/// <c>fractalmesh.gateway.job_store.degraded</c>, 1 while Redis is configured but away.
/// </summary>
public sealed class JobMetrics
{
    public const string MeterName = "FractalMesh.Gateway";
    /// <summary>Tag of <c>fractalmesh.gateway.jobs.finished</c>: done, failed or cancelled.</summary>
    public const string StateTag = "fractalmesh.job.state";
    /// <summary>Tag of <c>fractalmesh.gateway.jobs.resumptions</c>: takeover or interruption.</summary>
    public const string CauseTag = "fractalmesh.resumption.cause";

    public JobMetrics(IMeterFactory meters, JobRunner runner, JobStoreConnection connection)
    {
        var meter = meters.Create(MeterName);
        meter.CreateObservableGauge("fractalmesh.gateway.jobs.queued", () => runner.QueuedCount, "{job}", "Jobs waiting on this replica");
        meter.CreateObservableGauge("fractalmesh.gateway.jobs.running", () => runner.RunningCount, "{job}", "Jobs generating on this replica");
        meter.CreateObservableCounter("fractalmesh.gateway.jobs.finished", () =>
        {
            var counts = runner.Counts;
            return new[]
            {
                new Measurement<long>(counts.Done, new KeyValuePair<string, object?>(StateTag, "done")),
                new Measurement<long>(counts.Failed, new KeyValuePair<string, object?>(StateTag, "failed")),
                new Measurement<long>(counts.Cancelled, new KeyValuePair<string, object?>(StateTag, "cancelled")),
            };
        }, "{job}", "Jobs finished on this replica, by final state");
        meter.CreateObservableCounter("fractalmesh.gateway.jobs.resumptions", () =>
        {
            var counts = runner.Counts;
            return new[]
            {
                new Measurement<long>(counts.TakenOver, new KeyValuePair<string, object?>(CauseTag, "takeover")),
                new Measurement<long>(counts.Interrupted, new KeyValuePair<string, object?>(CauseTag, "interruption")),
            };
        }, "{resumption}", "Jobs resumed from their last level-0 checkpoint: taken over from a dead replica, or after a level below failed");
        meter.CreateObservableGauge("fractalmesh.gateway.job_store.degraded", () => connection.Degraded ? 1 : 0, null,
            "1 while Redis is configured but unreachable (jobs run without durable checkpoints)");
    }
}
