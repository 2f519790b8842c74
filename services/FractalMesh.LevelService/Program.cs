using FractalMesh.LevelService.Extensions;

// One fractal level (or a contiguous range of levels) as a gRPC service (DESIGN.md §3): configuration section "Level".
var builder = WebApplication.CreateBuilder(args);
builder.AddLevelService();

var app = builder.Build();
app.MapLevelService();
app.Run();
