using FractalMesh.Protos.Api;
using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// Scaling a level: a distributed gateway balances over two level-1 replicas (a static address list, client-side
/// round-robin); one is killed (SIGKILL) while it holds a call of a request; the request still completes, with the bytes
/// of the in-process sampler.
/// </summary>
public sealed class LevelReplicaFailoverTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AReplicaKilledMidRequestDoesNotFailTheRequest()
    {
        // A long start delay keeps every call inside its replica for a while: long enough to kill one mid-call even when
        // this process reads the replica's "queued" line late on a busy machine (400 ms was not always enough).
        var settings = LevelServiceProcess.TinyModelSettings();
        settings["Level:StartDelayMilliseconds"] = "1500";
        var replicas = await StartTogether.AllAsync(LevelServiceProcess.StartAsync(settings), LevelServiceProcess.StartAsync(settings));
        await using var a = replicas[0];
        await using var b = replicas[1];
        await using var gateway = await GatewayProcess.StartAsync("--Gateway:FirstRemoteLevel=1", $"--Gateway:LevelAddresses:0={a.Address}", $"--Gateway:LevelAddresses:1={b.Address}",
            "--Gateway:TorchThreads=1");

        // Warm-up until both replicas took a call: both are connected and round-robin alternates between them (the first
        // calls go to whichever connected first).
        var warm = new GenerateRequest { ClassLabels = { 0 }, Seed = 1, Params = new SamplingParams { NumIter = { 2, 1 } } };
        static bool Called(LevelServiceProcess replica) => replica.Output.Any(l => l.Contains("queued", StringComparison.Ordinal));
        for (int attempt = 0; attempt < 20 && !(Called(a) && Called(b)); attempt++) await gateway.Grpc.GenerateAsync(warm);
        Assert.True(Called(a) && Called(b), "round-robin never reached both replicas");

        var request = new GenerateRequest { ClassLabels = { 2, 6 }, Count = 2, Seed = 123, Params = new SamplingParams { Cfg = 2, NumIter = { 4, 4 } } };
        var expected = JobClient.ReferencePngs(request);
        int linesA = a.Output.Count;
        var timer = System.Diagnostics.Stopwatch.StartNew();
        var call = gateway.Grpc.GenerateAsync(request, deadline: DateTime.UtcNow.AddSeconds(60)).ResponseAsync;
        await a.WaitForLineAsync("queued", linesA, TimeSpan.FromSeconds(30));   // replica A holds a call of this request now
        a.Kill();
        var killedAt = timer.Elapsed;

        var response = await call.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(expected, response.Images.Select(i => i.Png.ToByteArray()));
        Assert.True(a.HasExited);
        Assert.True(gateway.IsRunning, gateway.Log);
        Assert.DoesNotContain(a.Output.Skip(linesA), l => l.Contains("sampling", StringComparison.Ordinal));   // A never sampled that call: B did
        output.WriteLine($"replica A killed {killedAt.TotalSeconds:F1}s into a 4-step request holding one of its calls; " +
            $"the request completed after {timer.Elapsed.TotalSeconds:F1}s, {response.Images.Count} images byte-identical to the in-process sampler");
    }
}
