using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace FractalMesh.Observability;

/// <summary>OpenTelemetry for a FractalMesh process in one call: traces across gateway → levels and metrics for Prometheus.</summary>
public static class ObservabilityExtensions
{
    /// <summary>Every FractalMesh ActivitySource and Meter is named <c>FractalMesh.&lt;Component&gt;</c>.</summary>
    public const string FractalMeshSources = "FractalMesh.*";

    /// <summary>
    /// Traces: incoming ASP.NET Core requests (a W3C <c>traceparent</c> from the caller continues its trace), outgoing
    /// gRPC client calls (which pass the trace on), and every <c>FractalMesh.*</c> ActivitySource. Metrics: every
    /// <c>FractalMesh.*</c> Meter, ASP.NET Core and Kestrel, HTTP client and the .NET runtime. Exported to Prometheus on
    /// <see cref="ObservabilityOptions.MetricsUrl"/> and to a collector at <see cref="ObservabilityOptions.OtlpEndpoint"/>
    /// when those are set (section <c>Observability</c>; a bad value stops the process at start).
    /// </summary>
    /// <param name="builder">The host.</param>
    /// <param name="serviceName">The <c>service.name</c> unless <c>Observability:ServiceName</c> overrides it.</param>
    public static IHostApplicationBuilder AddFractalMeshTelemetry(this IHostApplicationBuilder builder, string serviceName)
    {
        var section = builder.Configuration.GetSection(ObservabilityOptions.Section);
        // The exporters are chosen while the providers are built, before options are resolved: validate now, naming the key.
        var options = section.Get<ObservabilityOptions>() ?? new ObservabilityOptions();
        var problems = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), problems, validateAllProperties: true))
            throw new OptionsValidationException(problems);
        builder.Services.AddOptions<ObservabilityOptions>().Bind(section).ValidateDataAnnotations().ValidateOnStart();

        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(options.ServiceName ?? serviceName, serviceInstanceId: Environment.MachineName))
            .WithTracing(tracing =>
            {
                tracing.SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(options.TraceSampleRatio)))
                    .AddSource(FractalMeshSources)
                    .AddAspNetCoreInstrumentation(aspnet => aspnet.Filter = context => !IsProbe(context.Request.Path))
                    .AddGrpcClientInstrumentation();
                if (options.OtlpEndpoint is { Length: > 0 } otlp) tracing.AddOtlpExporter(o => o.Endpoint = new Uri(otlp));
            })
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(FractalMeshSources)
                    .AddAspNetCoreInstrumentation()
                    .AddMeter("System.Net.Http")
                    .AddRuntimeInstrumentation();
                if (options.MetricsEndpoint is { } endpoint)
                    metrics.AddPrometheusHttpListener(prometheus =>
                    {
                        prometheus.Port = endpoint.Port;
                        prometheus.ScrapeEndpointPath = ObservabilityOptions.MetricsPath;
                        // The exporter binds http://localhost:PORT/metrics/; "+" (every interface) is what a container needs.
                        prometheus.ConfigureHttpListener = (_, listener) =>
                        {
                            listener.Prefixes.Clear();
                            listener.Prefixes.Add($"http://{endpoint.Host}:{endpoint.Port}{ObservabilityOptions.MetricsPath}/");
                        };
                    });
                if (options.OtlpEndpoint is { Length: > 0 } otlp) metrics.AddOtlpExporter(o => o.Endpoint = new Uri(otlp));
            });
        return builder;
    }

    /// <summary>Health checks answer every few seconds from every orchestrator: spans of them would bury the real calls.</summary>
    static bool IsProbe(PathString path) =>
        path.StartsWithSegments("/grpc.health.v1.Health") || path.StartsWithSegments("/healthz");

    sealed class OptionsValidationException(List<ValidationResult> problems)
        : InvalidOperationException(string.Join("; ", problems.Select(p => p.ErrorMessage)));
}
