using FractalMesh.Gateway.Extensions;
using FractalMesh.Gateway.Services;
using FractalMesh.Observability;

// The public gateway (docs/ARCHITECTURE.md, Processes): gRPC ImageGeneration and Jobs plus their REST bridge; every level in this process by
// default, level 0 here and the levels below in level services when Gateway:LevelAddresses is set.
// appsettings.json sits beside the dll; relative paths in the configuration (Gateway:ModelPath) are read from the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

builder.AddGatewayOptions();
builder.AddGatewayEndpoints();
builder.AddGatewayAuth();
builder.AddFractalMeshTelemetry(serviceName: "fractalmesh-gateway");
builder.Services.AddImageGeneration();
builder.Services.AddImageGenerationApi();
builder.Services.AddJobs();

var app = builder.Build();

app.UseGatewayAuth();
app.MapGrpcService<ImageGenerationService>();
app.MapGrpcService<JobService>();
app.MapGatewayHealth();
app.MapWebPage();

app.Run();
