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
    /// Options (section "Level", validated with data annotations at start), HTTP/2 on every endpoint (TLS where Kestrel's
    /// configuration gives a certificate), the call secret, gRPC with reflection when enabled, grpc.health.v1 with separate liveness ("" and "liveness") and readiness ("readiness" and the
    /// LevelSampler service's own name), the model loader and the row batcher.
    /// </summary>
    public static WebApplicationBuilder AddLevelService(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<LevelOptions>()
            .Bind(builder.Configuration.GetSection(LevelOptions.Section))
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // gRPC between services is HTTP/2 only: h2c by default, TLS through Kestrel's Certificates/Endpoints configuration.
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2));

        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = MaxMessageBytes;
            grpc.MaxSendMessageSize = MaxMessageBytes;
        });
        builder.Services.AddGrpcReflection();
        // Callers prove they are part of the mesh with Level:CallSecret; without one configured every call is let in. No
        // default scheme: only the fallback policy (set with a secret) runs the handler, so an open level does no work per call.
        builder.Services.AddAuthentication()
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, CallSecretAuthenticationHandler>(CallSecretAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddOptions<Microsoft.AspNetCore.Authorization.AuthorizationOptions>()
            .Configure<Microsoft.Extensions.Options.IOptions<LevelOptions>>((authorization, level) =>
            {
                if (!string.IsNullOrEmpty(level.Value.CallSecret))
                    authorization.FallbackPolicy = new Microsoft.AspNetCore.Authorization.AuthorizationPolicyBuilder(CallSecretAuthenticationHandler.SchemeName)
                        .RequireAuthenticatedUser().Build();
            });
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

    /// <summary>
    /// The LevelSampler service behind the call secret, grpc.health.v1 open to probes, and server reflection only with
    /// <c>Level:EnableReflection</c> (it describes the service to anyone who can reach the port).
    /// </summary>
    public static WebApplication MapLevelService(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapGrpcService<LevelSamplerService>();
        app.MapGrpcHealthChecksService().AllowAnonymous();
        if (app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<LevelOptions>>().Value.EnableReflection)
            app.MapGrpcReflectionService();
        return app;
    }
}
