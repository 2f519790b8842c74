using System.Diagnostics;
using System.Net;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// The concurrency gate (1 generating, 2 waiting in the test gateway) refuses a flood with RESOURCE_EXHAUSTED / HTTP 429
/// instead of queuing it, serves what it admitted, and keeps serving; oversized messages are refused before parsing
/// (gRPC: RESOURCE_EXHAUSTED from the message size limit; REST: 400 from Kestrel's body limit).
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class OverloadTests(GatewayProcess gateway)
{
    static GenerateRequest Slow(long seed) => new()
    {
        ClassLabels = { 1 },
        Count = 4,
        Seed = seed,
        Params = new SamplingParams { NumIter = { 16, 16 } },
    };

    [Fact]
    public async Task AFloodBeyondTheGateGetsResourceExhaustedAndTheGatewayKeepsServing()
    {
        // A long request takes the only slot first (it is sent 300 ms ahead), so the flood arrives while it runs.
        var blocker = Code(gateway.CallGrpcAsync(new GenerateRequest { ClassLabels = { 1 }, Count = 8, Params = new SamplingParams { NumIter = { 16, 16 } } }));
        await Task.Delay(300);
        var timer = Stopwatch.StartNew();
        var overGrpc = Enumerable.Range(0, 6).Select(i => Code(gateway.CallGrpcAsync(Slow(100 + i)))).ToArray();
        var overRest = Enumerable.Range(0, 6).Select(i => gateway.PostRestAsync(Slow(200 + i))).ToArray();
        var grpcCodes = await Task.WhenAll(overGrpc.Append(blocker));
        var restAnswers = await Task.WhenAll(overRest);

        Assert.All(grpcCodes, code => Assert.Contains(code, new[] { StatusCode.OK, StatusCode.ResourceExhausted }));
        Assert.All(restAnswers, a => Assert.Contains(a.Status, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests }));
        // Everything arrived while the first admitted request ran: one slot and the queue's worth were served, the rest refused.
        int admitted = grpcCodes.Count(c => c == StatusCode.OK) + restAnswers.Count(a => a.Status == HttpStatusCode.OK);
        Assert.InRange(admitted, 1, GatewayProcess.MaxConcurrent + GatewayProcess.MaxQueued);
        Assert.Contains(StatusCode.ResourceExhausted, grpcCodes);
        var refused = restAnswers.First(a => a.Status == HttpStatusCode.TooManyRequests);
        Assert.Contains("\"code\":8", refused.Body.Replace(" ", "")); // RESOURCE_EXHAUSTED
        Assert.Contains("busy", refused.Body);

        var after = await gateway.CallGrpcAsync(new GenerateRequest { ClassLabels = { 0 }, Params = new SamplingParams { NumIter = { 1, 1 } } });
        Assert.Single(after.Images);
        Assert.True(gateway.IsRunning, gateway.Log);
        Assert.True(timer.Elapsed < TimeSpan.FromSeconds(60), $"the flood took {timer.Elapsed}");
    }

    static async Task<StatusCode> Code(Task<GenerateResponse> call)
    {
        try { await call; return StatusCode.OK; }
        catch (RpcException e) { return e.StatusCode; }
    }

    [Fact]
    public async Task AMessageOverTheByteLimitIsRefusedBeforeParsing()
    {
        var huge = new InpaintRequest { ImagePng = ByteString.CopyFrom(new byte[2 * GatewayProcess.MaxRequestBytes]), ClassLabel = 1 };
        var e = await Assert.ThrowsAsync<RpcException>(() => gateway.CallGrpcAsync(huge));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        var (status, body) = await gateway.PostRestAsync(huge); // Kestrel's body limit, reported by JSON transcoding as a bad request
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("too large", body);
        Assert.Single((await gateway.CallGrpcAsync(new GenerateRequest { ClassLabels = { 0 }, Params = new SamplingParams { NumIter = { 1, 1 } } })).Images);
    }
}
