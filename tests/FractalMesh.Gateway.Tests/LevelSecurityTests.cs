using FractalMesh.Protos.Api;
using FractalMesh.Protos.Level;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// The distributed pipeline locked down: a level-1 service and a level-0 service that both require the call secret and
/// serve over TLS with a self-signed certificate, level 0 calling level 1 with the secret and that certificate as its CA,
/// and a gateway doing the same towards level 0.
/// </summary>
public sealed class SecuredLevelsFixture : IAsyncLifetime
{
    public const string Secret = "level-secret-0123456789abcdef";

    public TlsCertificate Certificate { get; } = new();
    public LevelServiceProcess Level1 { get; private set; } = null!;
    public LevelServiceProcess Level0 { get; private set; } = null!;
    public GatewayProcess Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var level1 = LevelServiceProcess.TinyModelSettings();
        level1["Level:CallSecret"] = Secret;
        Level1 = await LevelServiceProcess.StartAsync(level1, tls: Certificate);
        var level0 = LevelServiceProcess.TinyModelSettings(firstLevel: 0);
        level0["Level:LastLevel"] = "0";
        level0["Level:NextAddresses:0"] = Level1.Address;
        level0["Level:NextCaCertificatePath"] = Certificate.PemPath;
        level0["Level:CallSecret"] = Secret;
        Level0 = await LevelServiceProcess.StartAsync(level0, tls: Certificate);
        Gateway = await GatewayProcess.StartAsync($"--Gateway:LevelAddresses:0={Level0.Address}", "--Gateway:TorchThreads=1",
            $"--Gateway:LevelCaCertificatePath={Certificate.PemPath}", $"--Gateway:LevelCallSecret={Secret}");
    }

    public async Task DisposeAsync()
    {
        if (Gateway is not null) await Gateway.DisposeAsync();
        if (Level0 is not null) await Level0.DisposeAsync();
        if (Level1 is not null) await Level1.DisposeAsync();
        Certificate.Dispose();
    }
}

/// <summary>
/// Level services accept calls only from the mesh: a forged call (no secret, or a wrong one) is UNAUTHENTICATED at either
/// level, a plaintext call to their TLS port fails, health stays open to probes, reflection is off, and the gateway with
/// the secret still generates the embedded gateway's bytes through both TLS hops.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class LevelSecurityTests(GatewayProcess embedded, SecuredLevelsFixture fixture) : IClassFixture<SecuredLevelsFixture>
{
    static readonly GenerateRequest Request = new() { ClassLabels = { 2 }, Count = 1, Seed = 77, Params = new SamplingParams { Cfg = 2, NumIter = { 4, 2 } } };

    GrpcChannel Channel(LevelServiceProcess level) =>
        GrpcChannel.ForAddress(level.Address, new GrpcChannelOptions { HttpHandler = fixture.Certificate.TrustingHandler() });

    static CallOptions WithSecret(string? secret) => new(
        headers: secret is null ? null : new Metadata { { "Authorization", $"Bearer {secret}" } }, deadline: DateTime.UtcNow.AddSeconds(30));

    [Theory]
    [InlineData(null)]
    [InlineData("forged-secret-0123456789abcdef")]
    public async Task AForgedCallIsUnauthenticatedAtEveryLevel(string? secret)
    {
        foreach (var level in new[] { fixture.Level0, fixture.Level1 })
        {
            using var channel = Channel(level);
            var client = new LevelSampler.LevelSamplerClient(channel);
            var error = await Assert.ThrowsAsync<RpcException>(() => client.SamplePatchesAsync(new SamplePatchesRequest(), WithSecret(secret)).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }
        using var top = Channel(fixture.Level0);
        using var stream = new LevelSampler.LevelSamplerClient(top).GenerateImages(new GenerateImagesRequest(), WithSecret(secret));
        var streamError = await Assert.ThrowsAsync<RpcException>(() => stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Unauthenticated, streamError.StatusCode);
    }

    /// <summary>The health probe as the TLS deployments run it (an exec probe of the pod's own https port), exit code and all.</summary>
    static async Task<int> RunHealthProbe(params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(FractalMesh.Testing.TestPaths.HealthProbeDll);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the health probe {string.Join(' ', arguments)} did not exit within 60 s");
        }
        await Task.WhenAll(output, error);
        return process.ExitCode;
    }

    [Fact]
    public async Task TheHealthProbeOfTheImagesSeesATlsLevelReadyOverLoopbackWithInsecureOnly()
    {
        var port = new Uri(fixture.Level1.Address).Port;
        // What deploy/k8s/components/tls runs in every level pod: the certificate names no 127.0.0.1, so --insecure.
        Assert.Equal(0, await RunHealthProbe("grpc", $"https://127.0.0.1:{port}", "readiness", "--insecure"));
        Assert.Equal(0, await RunHealthProbe("grpc", $"https://127.0.0.1:{port}", "liveness", "--insecure"));
        // Without it the self-signed certificate is refused, and plaintext gets no answer from the TLS port.
        Assert.Equal(1, await RunHealthProbe("grpc", $"https://127.0.0.1:{port}", "readiness"));
        Assert.Equal(1, await RunHealthProbe("grpc", $"http://127.0.0.1:{port}", "readiness"));
    }

    [Fact]
    public async Task TheSecretPassesAuthenticationHealthIsOpenAndReflectionIsOff()
    {
        using var channel = Channel(fixture.Level1);
        // An empty request with the secret gets past authentication to validation.
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            new LevelSampler.LevelSamplerClient(channel).SamplePatchesAsync(new SamplePatchesRequest(), WithSecret(SecuredLevelsFixture.Secret)).ResponseAsync);
        Assert.NotEqual(StatusCode.Unauthenticated, error.StatusCode);

        var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest { Service = "readiness" });
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        using var reflection = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(channel)
            .ServerReflectionInfo(WithSecret(SecuredLevelsFixture.Secret));
        // No request written: an unmapped method is answered at once, and a write could race with that answer.
        var unmapped = await Assert.ThrowsAsync<RpcException>(() => reflection.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Unimplemented, unmapped.StatusCode);
    }

    [Fact]
    public async Task APlaintextCallToATlsLevelFails()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Level1.Address.Replace("https://", "http://"));
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            new LevelSampler.LevelSamplerClient(channel).SamplePatchesAsync(new SamplePatchesRequest(), WithSecret(SecuredLevelsFixture.Secret)).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task TheGatewayWithTheSecretGeneratesTheEmbeddedBytesOverTls()
    {
        var distributed = await fixture.Gateway.Grpc.GenerateAsync(Request, deadline: DateTime.UtcNow.AddSeconds(60));
        var local = await embedded.Grpc.GenerateAsync(Request, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal(local.Images, distributed.Images);
    }
}
