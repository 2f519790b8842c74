using Xunit;

namespace FractalMesh.Cli.Tests;

/// <summary>
/// <c>fractalmesh generate --endpoint URL --api-key KEY</c> against a real gateway with API keys: the right key generates
/// over gRPC and REST; no key or a wrong one exits 1 with the gateway's refusal (UNAUTHENTICATED, HTTP 401).
/// </summary>
public sealed class GatewayEndpointAuthTests : IAsyncLifetime, IDisposable
{
    const string Key = "cli-test-key-0123456789abcdef";

    readonly string dir = Directory.CreateTempSubdirectory("fm-remote-auth-").FullName;
    GatewayProcess gateway = null!;

    public async Task InitializeAsync() =>
        gateway = await GatewayProcess.StartAsync("--Auth:Enabled=true", "--Auth:ApiKeys:0:Name=cli", $"--Auth:ApiKeys:0:Key={Key}");

    public Task DisposeAsync() => gateway?.DisposeAsync() ?? Task.CompletedTask;

    public void Dispose() => Directory.Delete(dir, true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OnlyTheRightKeyGenerates(bool rest)
    {
        string endpoint = (rest ? gateway.RestAddress : gateway.GrpcAddress).ToString();
        string[] common = ["generate", "--endpoint", endpoint, .. (rest ? new[] { "--rest" } : []), "--class", "1", "--iters", "2,2", "--out", dir];

        var (code, output, error) = CommandLineTests.Run([.. common, "--api-key", Key]);
        Assert.True(code == 0, $"{output}\n{error}\n{gateway.Log}");

        foreach (var key in new[] { null, "wrong-key-0123456789abcdef" })
        {
            (code, _, error) = CommandLineTests.Run(key is null ? common : [.. common, "--api-key", key]);
            Assert.Equal(1, code);
            Assert.Contains(rest ? "401" : "Unauthenticated", error);
        }
    }
}
