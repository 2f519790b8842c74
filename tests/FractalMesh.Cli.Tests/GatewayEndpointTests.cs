using FractalMesh.Protos.Api;
using Xunit;

namespace FractalMesh.Cli.Tests;

/// <summary>
/// <c>fractalmesh generate --endpoint URL</c> against a real embedded gateway process: over gRPC through FractalMesh.Client
/// (and over REST with <c>--rest</c>) the same PNGs as a direct gRPC call, and the gateway's field errors as usage errors.
/// </summary>
public sealed class GatewayEndpointTests : IClassFixture<GatewayProcess>, IDisposable
{
    readonly GatewayProcess gateway;
    readonly string dir = Directory.CreateTempSubdirectory("fm-remote-").FullName;

    public GatewayEndpointTests(GatewayProcess gateway) => this.gateway = gateway;

    public void Dispose() => Directory.Delete(dir, true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GenerateWithEndpointWritesTheGatewaysPngsNamedBySeed(bool rest)
    {
        // Above 2^32: the seed is 64-bit end to end, as in the API.
        const long seed = (1L << 32) + 10;
        string endpoint = (rest ? gateway.RestAddress : gateway.GrpcAddress).ToString();
        var (code, output, error) = CommandLineTests.Run(["generate", "--endpoint", endpoint, .. (rest ? new[] { "--rest" } : []),
            "--class", "3,4", "--count", "2", "--seed", seed.ToString(), "--cfg", "2", "--iters", "2,2", "--out", dir]);
        Assert.True(code == 0, $"{output}\n{error}\n{gateway.Log}");
        var expected = await gateway.Client.GenerateAsync(new GenerateRequest
        {
            ClassLabels = { 3, 4 }, Count = 2, Seed = seed, Params = new SamplingParams { Cfg = 2, NumIter = { 2, 2 } },
        });
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(seed + i, expected.Images[i].Seed);
            Assert.Equal(expected.Images[i].Png.ToByteArray(), File.ReadAllBytes(Path.Combine(dir, $"generate-seed{seed + i}.png")));
        }
        Assert.True(File.Exists(Path.Combine(dir, "generate-grid.png")));
    }

    [Fact]
    public void TheGatewaysFieldErrorIsAUsageErrorNamingTheField()
    {
        // The command line cannot know the served model's classes: the gateway names the field.
        var (code, _, error) = CommandLineTests.Run("generate", "--endpoint", gateway.GrpcAddress.ToString(), "--class", "12", "--out", dir);
        Assert.Equal(2, code);
        Assert.Contains("class_labels[0]", error);
        (code, _, error) = CommandLineTests.Run("generate", "--endpoint", gateway.GrpcAddress.ToString(), "--model", "x.safetensors");
        Assert.Equal(2, code);
        Assert.Contains("--model", error);
        (code, _, error) = CommandLineTests.Run("uncrop", "--endpoint", gateway.GrpcAddress.ToString(), "--class", "1", "--image", "x.png", "--keep", "0,0,1,1");
        Assert.Equal(2, code);
        Assert.Contains("--endpoint", error);
    }

    [Fact]
    public void AnUnreachableGatewayExitsOneSayingSo()
    {
        var (code, _, error) = CommandLineTests.Run("generate", "--endpoint", $"http://127.0.0.1:{TestPaths.FreePort()}", "--out", dir);
        Assert.Equal(1, code);
        Assert.Contains("Unavailable", error);
    }
}
