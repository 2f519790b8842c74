using FractalMesh.LevelService.Extensions;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Protos.Level;
using FractalMesh.Rpc;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// Two real level services with the demo model, level 0 calling level 1 (and the pixel head) in the other: a call that
/// arrives with a W3C trace reaches the second service in the same trace (through the batcher's thread), and the first
/// one's Prometheus endpoint reports queue depth (under the name the autoscalers use), batch sizes, step latency per level and rows.
/// </summary>
public sealed class LevelServiceTelemetryTests
{
    const string DemoModel = "models/emoji32-demo.safetensors";

    static async Task WaitReadyAsync(string address)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var health = new Health.HealthClient(channel);
        var until = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                var reply = await health.CheckAsync(new HealthCheckRequest { Service = LevelServiceExtensions.ReadinessService }, deadline: DateTime.UtcNow.AddSeconds(5));
                if (reply.Status == HealthCheckResponse.Types.ServingStatus.Serving) return;
            }
            catch (RpcException) { }
            if (DateTime.UtcNow > until) throw new TimeoutException($"{address} was not ready in 60 s");
            await Task.Delay(100);
        }
    }

    /// <summary>A well-formed level-0 request of the demo model with random conditions and 2 iterations per level.</summary>
    static SamplePatchesRequest LevelZeroRequest(int rows)
    {
        string model = Repository.PathOf(DemoModel);
        LevelShape shape;
        using (var loaded = ModelCheckpoint.Open(model)) shape = LevelShape.Of(loaded.Config, 0);
        var rng = new Random(7);
        var request = new SamplePatchesRequest
        {
            Level = 0, PatchSize = shape.PatchSize, CondCount = shape.MaxConds, CondWidth = shape.CondWidth, LinearCfg = true,
            NumIter = { Enumerable.Repeat(2, shape.NumIterCount) },
        };
        for (int r = 0; r < rows; r++)
        {
            var conds = new float[shape.MaxConds * shape.CondWidth];
            for (int i = 0; i < conds.Length; i++) conds[i] = (float)(rng.NextDouble() * 2 - 1);
            request.Rows.Add(new PatchRow
            {
                Conds = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(conds.AsSpan())),
                Cfg = 1f, Temperature = 1f, FilterThreshold = 1e-4f, Stream = (ulong)(1000 + r),
            });
        }
        return request;
    }

    /// <summary>Request logs with their scopes: "TraceId:…" says which trace each incoming call belongs to.</summary>
    static readonly string[] RequestLogging =
    [
        "--Logging:LogLevel:Default=Warning",
        "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
        "--Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics=Information",
        "--Logging:Console:FormatterName=simple",
        "--Logging:Console:FormatterOptions:SingleLine=true",
        "--Logging:Console:FormatterOptions:IncludeScopes=true",
    ];

    [Fact]
    public async Task ACallsTraceReachesTheNextLevelAndMetricsAreScraped()
    {
        string model = Repository.PathOf(DemoModel);
        await using var levelOne = await LevelServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Level:Model"] = model, ["Level:FirstLevel"] = "1", ["Level:TorchThreads"] = "1",
        }, logging: RequestLogging);
        int metricsPort = TestPaths.FreePort();
        await using var levelZero = await LevelServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Level:Model"] = model, ["Level:FirstLevel"] = "0", ["Level:LastLevel"] = "0", ["Level:TorchThreads"] = "1",
            // As compose and Kubernetes configure it: one DNS name, every address it resolves to balanced round-robin.
            ["Level:NextAddresses:0"] = levelOne.Address.Replace("http://127.0.0.1:", "dns:///localhost:"),
            ["Observability:MetricsUrl"] = $"http://127.0.0.1:{metricsPort}/",
        }, logging: RequestLogging);
        await Task.WhenAll(WaitReadyAsync(levelOne.Address), WaitReadyAsync(levelZero.Address));

        string traceId = Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();
        using var channel = GrpcChannel.ForAddress(levelZero.Address);
        var client = new LevelSampler.LevelSamplerClient(channel);
        var reply = await client.SamplePatchesAsync(LevelZeroRequest(3),
            new Metadata { { "traceparent", $"00-{traceId}-00f067aa0ba902b7-01" } }, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal(3, reply.Patches.Count);

        // Level 1's request log carries the caller's trace: caller → level 0 → level 1 is one trace.
        Assert.True(levelOne.Output.Any(l => l.Contains("SamplePatches", StringComparison.Ordinal) && l.Contains($"TraceId:{traceId}", StringComparison.Ordinal)),
            $"level 1 saw no call in trace {traceId}:\n{string.Join("\n", levelOne.Output)}");

        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
        // The queue-depth gauge under the name every level's HorizontalPodAutoscaler scales on (deploy/k8s).
        Assert.Matches($@"{KubernetesManifestUnitTests.QueueDepthMetric}\{{[^}}]*fractalmesh_level=""0""[^}}]*\}} \d+", metrics);
        foreach (var name in new[] { "fractalmesh_level_batch_calls_bucket{", "http_server_request_duration_seconds_bucket{" })
            Assert.Contains(name, metrics);
        // The queue-wait histogram went with the fixed batching window: passes start when the level is free.
        Assert.DoesNotContain("fractalmesh_level_queue_wait_seconds", metrics);
        Assert.Matches(@"fractalmesh_level_step_duration_seconds_count\{[^}]*fractalmesh_level=""0""[^}]*\} 1", metrics);
        // One pass per level-0 step (2 iterations), each over the call's 3 rows: passes are per step, not per call.
        Assert.Matches(@"fractalmesh_level_batch_rows_count\{[^}]*fractalmesh_level=""0""[^}]*\} 2\n", metrics);
        Assert.Matches(@"fractalmesh_level_batch_rows_sum\{[^}]*fractalmesh_level=""0""[^}]*\} 6\n", metrics);
        Assert.Matches(@"fractalmesh_level_rows_total\{[^}]*fractalmesh_level=""0""[^}]*\} 3", metrics);
    }
}
