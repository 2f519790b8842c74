using System.Diagnostics;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>Bad configuration stops the gateway process at start, naming the setting by its section path.</summary>
public sealed class GatewayStartupTests
{
    [Theory]
    [InlineData("--Gateway:ModelPath=no/such/model.safetensors", "Gateway:ModelPath")]
    [InlineData("--Gateway:MaxImagesPerRequest=0", "Gateway:MaxImagesPerRequest")]
    [InlineData("--Gateway:RestUrl=ftp://localhost:1", "Gateway:RestUrl")]
    [InlineData("--Gateway:Device=tpu", "Gateway:Device")]
    [InlineData("--Gateway:JobLeaseSeconds=0", "Gateway:JobLeaseSeconds")]
    [InlineData("--Gateway:MaxQueuedJobs=0", "Gateway:MaxQueuedJobs")]
    [InlineData("--Gateway:Redis=localhost:6379,bogusOption=1", "Gateway:Redis")]
    [InlineData("--Gateway:LevelAddresses:0=level1:5101", "Gateway:LevelAddresses")]
    [InlineData("--Gateway:TorchThreads=-1", "Gateway:TorchThreads")]
    [InlineData("--Auth:Enabled=true", "Auth:ApiKeys")]                                   // keys on, none listed
    [InlineData("--Auth:ApiKeys:0:Name=a", "Auth:ApiKeys:0")]                              // neither Key nor KeySha256
    [InlineData("--Auth:ApiKeys:0:Key=short", "Auth:ApiKeys:0:Key")]
    [InlineData("--Gateway:GrpcUrl=https://127.0.0.1:59998", "Gateway:CertificatePath")] // TLS without a certificate
    public async Task BadSettingStopsTheGatewayNamingIt(string setting, string named)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { GatewayProcess.GatewayDll, $"--Gateway:ModelPath={GatewayProcess.ModelFolder}",
            "--Gateway:GrpcUrl=http://127.0.0.1:59998", "--Gateway:RestUrl=http://127.0.0.1:59999", setting }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw; }
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains(named, await output + await error);
    }
}
