using FractalMesh.Gateway.Generation;
using FractalMesh.Gateway.Validation;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Extensions;

/// <summary>Registrations of the generator (embedded or, later, distributed) and of the public API on top of it.</summary>
public static class ImageGenerationExtensions
{
    /// <summary>
    /// Embedded mode: the model is loaded in this process when the gateway starts, before it listens. A distributed mode
    /// registers another <see cref="IImageGenerator"/> here (level 0 local, the levels below behind level services).
    /// </summary>
    public static IServiceCollection AddEmbeddedImageGeneration(this IServiceCollection services)
    {
        services.AddSingleton<EmbeddedImageGenerator>();
        services.AddSingleton<IImageGenerator>(sp => sp.GetRequiredService<EmbeddedImageGenerator>());
        services.AddHostedService<ModelWarmup>();
        services.AddHealthChecks().AddCheck<GeneratorHealthCheck>("model");
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

    /// <summary>Loads the model and runs one tiny generation while the host starts (hosted services start before Kestrel listens).</summary>
    sealed class ModelWarmup(EmbeddedImageGenerator generator) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            generator.WarmUp();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    sealed class GeneratorHealthCheck(IImageGenerator generator) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(HealthCheckResult.Healthy($"{generator.Model.ImageSize}×{generator.Model.ImageSize}, {generator.Model.ClassCount} classes"));
    }
}
