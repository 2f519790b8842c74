using FractalMesh.Cli.Commands;
using FractalMesh.Protos.Api;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary><c>fractalmesh generate --endpoint URL</c> against the real gateway: the same PNGs as a gRPC call, and the gateway's field errors as usage errors.</summary>
[Collection(GatewayCollection.Name)]
public sealed class RemoteGenerateTests(GatewayProcess gateway) : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("fm-remote-").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    static int Run(string mode, params string[] args) => RemoteGenerate.RunAsync(mode, new Options(args)).GetAwaiter().GetResult();

    [Fact]
    public async Task GenerateWithEndpointWritesTheGatewaysPngsNamedBySeed()
    {
        int code = Run("generate", "--endpoint", gateway.RestAddress.ToString(), "--class", "3,4", "--count", "2", "--seed", "10",
            "--cfg", "2", "--iters", "2,2", "--out", dir);
        Assert.Equal(0, code);
        var expected = await gateway.CallGrpcAsync(new GenerateRequest
        {
            ClassLabels = { 3, 4 }, Count = 2, Seed = 10, Params = new SamplingParams { Cfg = 2, NumIter = { 2, 2 } },
        });
        for (int i = 0; i < 4; i++)
            Assert.Equal(expected.Images[i].Png.ToByteArray(), File.ReadAllBytes(Path.Combine(dir, $"generate-seed{10 + i}.png")));
        Assert.True(File.Exists(Path.Combine(dir, "generate-grid.png")));
    }

    [Fact]
    public void TheGatewaysFieldErrorIsAUsageErrorNamingTheField()
    {
        var e = Assert.Throws<UsageException>(() => Run("generate", "--endpoint", gateway.RestAddress.ToString(), "--class", "3", "--cfg", "70", "--out", dir));
        Assert.Contains("params.cfg", e.Message);
        Assert.Throws<UsageException>(() => Run("generate", "--endpoint", gateway.RestAddress.ToString(), "--model", "x.safetensors"));
        Assert.Throws<UsageException>(() => Run("uncrop", "--endpoint", gateway.RestAddress.ToString(), "--class", "1"));
    }
}
