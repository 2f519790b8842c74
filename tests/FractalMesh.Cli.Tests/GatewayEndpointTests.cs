using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
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
        // Classes by name (the gateway's model describes them: the reference model's are "class N") or by index.
        // Above 2^32: the seed is 64-bit end to end, as in the API.
        const long seed = (1L << 32) + 10;
        string endpoint = (rest ? gateway.RestAddress : gateway.GrpcAddress).ToString();
        var (code, output, error) = CommandLineTests.Run(["generate", "--endpoint", endpoint, .. (rest ? new[] { "--rest" } : []),
            "--class", "class 3,4", "--count", "2", "--seed", seed.ToString(), "--cfg", "2", "--iters", "2,2", "--out", dir]);
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
        // Indices go to the gateway as they are: it names the field.
        var (code, _, error) = CommandLineTests.Run("generate", "--endpoint", gateway.GrpcAddress.ToString(), "--class", "12", "--out", dir);
        Assert.Equal(2, code);
        Assert.Contains("class_labels[0]", error);
        // A name the gateway's model does not have is refused here, with the names it has.
        foreach (var rest in new[] { false, true })
        {
            (code, _, error) = CommandLineTests.Run(["generate", "--endpoint", (rest ? gateway.RestAddress : gateway.GrpcAddress).ToString(),
                .. (rest ? new[] { "--rest" } : []), "--class", "dragons", "--out", dir]);
            Assert.Equal(2, code);
            Assert.Contains("--class: unknown class 'dragons' (known: class 0, class 1", error);
        }
        (code, _, error) = CommandLineTests.Run("generate", "--endpoint", gateway.GrpcAddress.ToString(), "--model", "x.safetensors");
        Assert.Equal(2, code);
        Assert.Contains("--model", error);
        (code, _, error) = CommandLineTests.Run("uncrop", "--endpoint", gateway.GrpcAddress.ToString(), "--class", "1", "--image", "x.png", "--keep", "0,0,1,1");
        Assert.Equal(2, code);
        Assert.Contains("--endpoint", error);
    }

    [Fact]
    public async Task TheServedModelsRecommendationIsNamedWhenSamplingOtherwise()
    {
        string tiny = Path.Combine(dir, "tiny.safetensors"), recommending = Path.Combine(dir, "recommending.safetensors");
        ModelCheckpoint.ConvertOfficial(Path.Combine(GatewayProcess.ModelFolder, "checkpoint-last.pth"),
            FractalConfig.FromJson(File.ReadAllText(Path.Combine(GatewayProcess.ModelFolder, "config.json"))), tiny);
        var (code, _, error) = CommandLineTests.Run("export", tiny, "--out", recommending, "--recommend", "cfg=3,schedule=constant,temperature=1.1,filter=0.002");
        Assert.True(code == 0, error);
        await using var served = await GatewayProcess.StartAsync($"--Gateway:ModelPath={recommending}");
        foreach (var rest in new[] { false, true })
        {
            string[] common = ["generate", "--endpoint", (rest ? served.RestAddress : served.GrpcAddress).ToString(), .. (rest ? new[] { "--rest" } : []),
                "--class", "1", "--iters", "2,2", "--out", dir];
            (code, var output, error) = CommandLineTests.Run(common);
            Assert.True(code == 0, $"{output}\n{error}\n{served.Log}");
            Assert.Contains("the model recommends --cfg 3 --schedule constant --temperature 1.1 --filter 0.002 ", output);
            (code, output, error) = CommandLineTests.Run([.. common, "--cfg", "3", "--schedule", "constant", "--temperature", "1.1", "--filter", "0.002"]);
            Assert.True(code == 0, error);
            Assert.DoesNotContain("recommends", output);
        }
    }

    [Fact]
    public void AnUnreachableGatewayExitsOneSayingSo()
    {
        var (code, _, error) = CommandLineTests.Run("generate", "--endpoint", $"http://127.0.0.1:{TestPaths.FreePort()}", "--out", dir);
        Assert.Equal(1, code);
        Assert.Contains("Unavailable", error);
    }
}
