using FractalMesh.Protos.Level;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace FractalMesh.LevelService.Extensions;

/// <summary>The level service's registrations and endpoints, so that Program.cs reads like a table of contents.</summary>
public static class LevelServiceExtensions
{
    /// <summary>Health-check tag of what says the process is alive.</summary>
    public const string Live = "live";
    /// <summary>Health-check tag of what says the service can take calls (the model is loaded).</summary>
    public const string Ready = "ready";

    /// <summary>grpc.health.v1 service that reports the process alive (Kubernetes liveness probes ask it).</summary>
    public const string LivenessService = "liveness";
    /// <summary>grpc.health.v1 service that reports SERVING once the model is loaded (readiness probes ask it).</summary>
    public const string ReadinessService = "readiness";

    /// <summary>Largest request or response message; rows of a big level are large.</summary>
    const int MaxMessageBytes = 64 << 20;

    /// <summary>
    /// Options (section "Level", validated with data annotations at start), HTTP/2 without TLS on every endpoint, gRPC with
    /// reflection, grpc.health.v1 with separate liveness ("" and "liveness") and readiness ("readiness" and the
    /// LevelSampler service's own name), the model loader and the row batcher.
    /// </summary>
    public static WebApplicationBuilder AddLevelService(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<LevelOptions>()
            .Bind(builder.Configuration.GetSection(LevelOptions.Section))
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // gRPC between services is cleartext HTTP/2 inside the cluster (h2c): no HTTP/1.1 fallback to negotiate.
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2));

        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = MaxMessageBytes;
            grpc.MaxSendMessageSize = MaxMessageBytes;
        });
        builder.Services.AddGrpcReflection();
        builder.Services.AddGrpcHealthChecks(health =>
        {
            health.Services.Clear();
            health.Services.Map("", check => check.Tags.Contains(Live));
            health.Services.Map(LivenessService, check => check.Tags.Contains(Live));
            health.Services.Map(ReadinessService, check => check.Tags.Contains(Ready));
            health.Services.Map(LevelSampler.Descriptor.FullName, check => check.Tags.Contains(Ready));
        })
            .AddCheck("process", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy("running"), [Live])
            .AddCheck<ModelLoader>("model", tags: [Ready]);

        builder.Services.AddSingleton<LevelTelemetry>();
        builder.Services.AddSingleton<LevelCalls>();
        builder.Services.AddSingleton<ModelLoader>();
        builder.Services.AddHostedService(services => services.GetRequiredService<ModelLoader>());
        return builder;
    }

    /// <summary>The LevelSampler service, grpc.health.v1 and server reflection.</summary>
    public static WebApplication MapLevelService(this WebApplication app)
    {
        app.MapGrpcService<LevelSamplerService>();
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        return app;
    }
}
