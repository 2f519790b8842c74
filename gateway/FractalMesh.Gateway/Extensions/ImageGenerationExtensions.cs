using FractalMesh.Gateway.Generation;
using FractalMesh.Gateway.Validation;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Extensions;

/// <summary>Registrations of the generator (embedded or distributed) and of the public API on top of it.</summary>
public static class ImageGenerationExtensions
{
    /// <summary>
    /// The generator <c>Gateway:LevelAddresses</c> asks for: empty, the embedded mode (every level here); otherwise the
    /// distributed mode (the levels from <c>Gateway:FirstRemoteLevel</c>, 0 by default, down in level services). Where this
    /// process runs levels, the model is loaded and warmed up while the host starts, before it listens.
    /// </summary>
    public static IServiceCollection AddImageGeneration(this IServiceCollection services)
    {
        services.AddSingleton<GatewayModel>();
        services.AddSingleton<IImageGenerator>(sp => sp.GetRequiredService<IOptions<GatewayOptions>>().Value.Distributed
            ? ActivatorUtilities.CreateInstance<DistributedImageGenerator>(sp)
            : ActivatorUtilities.CreateInstance<EmbeddedImageGenerator>(sp));
        services.AddHostedService<ModelWarmup>();
        services.AddHealthChecks()
            .AddCheck<GeneratorHealthCheck>("model")
            .AddCheck<LevelServicesHealthCheck>("levels");
        return services;
    }

    /// <summary>The ImageGeneration gRPC service, its REST bridge (JSON transcoding) and their admission and validation.</summary>
    public static IServiceCollection AddImageGenerationApi(this IServiceCollection services)
    {
        services.AddSingleton<GenerationGate>();
        services.AddSingleton<RequestValidator>();
        services.AddGrpc().AddJsonTranscoding(o =>
        {
            // Error details written into REST error bodies must be resolvable by the JSON formatter.
            o.TypeRegistry = TypeRegistry.FromFiles(Google.Rpc.ErrorDetailsReflection.Descriptor);
            // The proto3 JSON mapping: int64 (seeds) as strings, which JavaScript numbers cannot hold exactly.
            o.JsonSettings.WriteInt64sAsStrings = true;
        });
        services.AddOptions<GrpcServiceOptions>().Configure<IOptions<GatewayOptions>>((grpc, gateway) =>
            grpc.MaxReceiveMessageSize = gateway.Value.MaxRequestBytes);
        return services;
    }

    /// <summary>
    /// Loads the model (and, in distributed mode, opens the level services' channel) and runs one tiny generation in this
    /// process while the host starts (hosted services start before Kestrel listens).
    /// </summary>
    sealed class ModelWarmup(GatewayModel model, IImageGenerator generator) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            _ = generator; // created now, so a bad level address stops the gateway at start
            model.WarmUp();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    sealed class GeneratorHealthCheck(IImageGenerator generator) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(HealthCheckResult.Healthy($"{generator.Model.ImageSize}×{generator.Model.ImageSize}, {generator.Model.ClassCount} classes"));
    }

    /// <summary>
    /// Where the levels run. Embedded: here. Distributed: Degraded while the level services' circuit is open (they kept
    /// failing: requests fail fast with UNAVAILABLE and jobs wait to resume), Healthy otherwise; readiness still answers
    /// 200, since the gateway serves jobs and answers as soon as a level comes back.
    /// </summary>
    sealed class LevelServicesHealthCheck(IImageGenerator generator, IOptions<GatewayOptions> options) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (generator is not DistributedImageGenerator distributed)
                return Task.FromResult(HealthCheckResult.Healthy("embedded: every level in this process"));
            var o = options.Value;
            var data = new Dictionary<string, object>
            {
                ["firstRemoteLevel"] = o.FirstRemoteLevel,
                ["addresses"] = string.Join(",", o.LevelAddresses),
                ["circuit"] = distributed.Circuit.ToString(),
            };
            string where = $"level {o.FirstRemoteLevel} and below at {string.Join(", ", o.LevelAddresses)}";
            return Task.FromResult(distributed.Circuit is Polly.CircuitBreaker.CircuitState.Open or Polly.CircuitBreaker.CircuitState.Isolated
                ? HealthCheckResult.Degraded($"{where}: they keep failing (circuit open); requests fail fast until a trial call succeeds", data: data)
                : HealthCheckResult.Healthy(where, data));
        }
    }
}
