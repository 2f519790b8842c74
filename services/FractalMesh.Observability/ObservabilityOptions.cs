using System.ComponentModel.DataAnnotations;

namespace FractalMesh.Observability;

/// <summary>
/// Where a FractalMesh process exposes its telemetry (configuration section <c>Observability</c>, validated at start).
/// Traces and metrics are always collected; these settings only say where they go.
/// </summary>
public sealed class ObservabilityOptions : IValidatableObject
{
    /// <summary>The configuration section the options are bound from.</summary>
    public const string Section = "Observability";

    /// <summary>The path Prometheus scrapes under <see cref="MetricsUrl"/>.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>
    /// Where Prometheus scrapes <c>/metrics</c>: <c>http://HOST:PORT/</c> with HOST <c>+</c> (every interface), <c>localhost</c>
    /// or an IP address. It is a listener of its own, beside the service's ports, so that a service speaking only HTTP/2
    /// (the level service) still answers Prometheus' HTTP/1.1. Empty (default): no scrape endpoint.
    /// </summary>
    public string? MetricsUrl { get; set; }

    /// <summary>An OpenTelemetry collector (OTLP over gRPC, e.g. <c>http://otel-collector:4317</c>) that receives traces and metrics; empty (default): none.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>The <c>service.name</c> reported with every span and metric; default: the name the program passes.</summary>
    public string? ServiceName { get; set; }

    /// <summary>Share of new traces recorded (a trace started upstream follows its caller's decision); default 1.</summary>
    [Range(0.0, 1.0, ErrorMessage = "Observability:TraceSampleRatio must be between 0 and 1")]
    public double TraceSampleRatio { get; set; } = 1.0;

    /// <summary>Host and port of <see cref="MetricsUrl"/>; null when none is set or it does not parse.</summary>
    public (string Host, int Port)? MetricsEndpoint
    {
        get
        {
            if (string.IsNullOrWhiteSpace(MetricsUrl)) return null;
            var m = System.Text.RegularExpressions.Regex.Match(MetricsUrl.Trim(), @"^http://(\+|\*|localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})/?$");
            return m.Success && int.Parse(m.Groups[2].Value) is >= 1 and <= 65535 and var port ? (m.Groups[1].Value, port) : null;
        }
    }

    /// <summary>The addresses parse; checked at start with the section path in the message.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrWhiteSpace(MetricsUrl) && MetricsEndpoint is null)
            yield return new($"Observability:MetricsUrl: '{MetricsUrl}' is not http://HOST:PORT/ (HOST: +, localhost or an IP address)",
                [nameof(MetricsUrl)]);
        if (!string.IsNullOrWhiteSpace(OtlpEndpoint)
            && !(Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out var otlp) && otlp.Scheme is "http" or "https"))
            yield return new($"Observability:OtlpEndpoint: '{OtlpEndpoint}' is not an http(s):// address", [nameof(OtlpEndpoint)]);
    }
}
