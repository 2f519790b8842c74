using FractalMesh.LevelService.Extensions;
using FractalMesh.Observability;

// One fractal level (or a contiguous range of levels) as a gRPC service (docs/ARCHITECTURE.md, Processes): configuration section "Level";
// traces and metrics (section "Observability", Prometheus /metrics on Observability:MetricsUrl) through OpenTelemetry.
var builder = WebApplication.CreateBuilder(args);
builder.AddLevelService();
builder.AddFractalMeshTelemetry(serviceName: "fractalmesh-level-service");

var app = builder.Build();
app.MapLevelService();
app.Run();
