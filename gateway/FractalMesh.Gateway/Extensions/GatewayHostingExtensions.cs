using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Extensions;

/// <summary>Configuration and listening: the <c>Gateway</c> section, validated at start, and Kestrel's endpoints and limits.</summary>
public static class GatewayHostingExtensions
{
    /// <summary>Binds <see cref="GatewayOptions"/> from the <c>Gateway</c> section; a bad value stops the process at start.</summary>
    public static WebApplicationBuilder AddGatewayOptions(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<GatewayOptions>()
            .Bind(builder.Configuration.GetSection(GatewayOptions.Section))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        return builder;
    }

    /// <summary>
    /// Two ports, because HTTP/2 without TLS cannot share a port with HTTP/1.1 in Kestrel (no ALPN to choose):
    /// Gateway:GrpcUrl serves gRPC over HTTP/2 (prior knowledge), Gateway:RestUrl serves REST and health over HTTP/1.1.
    /// </summary>
    public static WebApplicationBuilder AddGatewayEndpoints(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<GatewayOptions>>((kestrel, options) =>
        {
            var gateway = options.Value; // validated: both addresses parse, and an https one has a certificate
            var certificate = gateway.LoadCertificate();
            ListenAddress.Parse(gateway.GrpcUrl)!.Listen(kestrel, HttpProtocols.Http2, certificate);
            ListenAddress.Parse(gateway.RestUrl)!.Listen(kestrel, HttpProtocols.Http1, certificate);
            // A REST body carries the PNGs in base64 (4/3 larger) inside JSON; gRPC messages are bounded by MaxReceiveMessageSize.
            kestrel.Limits.MaxRequestBodySize = gateway.MaxRequestBytes * 4L / 3 + 64 * 1024;
        });
        return builder;
    }

    /// <summary>
    /// Liveness and readiness for orchestrators: the model is loaded before the gateway listens, so both answer once it
    /// serves. Readiness answers 200 while Healthy or Degraded (Redis away: the gateway still serves) with a JSON body
    /// naming each check's status, description and data, and 503 only when Unhealthy.
    /// </summary>
    public static WebApplication MapGatewayHealth(this WebApplication app)
    {
        // Open with Auth:Enabled too: probes carry no key.
        app.MapHealthChecks("/healthz/live", new() { Predicate = _ => false }).AllowAnonymous();
        app.MapHealthChecks("/healthz/ready", new() { ResponseWriter = WriteReport }).AllowAnonymous();
        return app;
    }

    static Task WriteReport(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsJsonAsync(new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new
            {
                status = e.Value.Status.ToString(),
                description = e.Value.Description,
                data = e.Value.Data,
            }),
        });
    }
}
