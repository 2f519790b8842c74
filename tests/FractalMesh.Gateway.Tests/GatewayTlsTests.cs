using System.Net;
using FractalMesh.Protos.Api;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// The public ports over TLS: a gateway given a self-signed certificate (made here, written to a temporary PFX) serves gRPC
/// and REST over https; a client trusting that certificate generates, a plaintext client and a client that does not trust
/// it fail.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class GatewayTlsTests
{
    static readonly GenerateRequest Request = new() { ClassLabels = { 1 }, Count = 1, Seed = 3, Params = new SamplingParams { NumIter = { 4, 2 } } };

    [Fact]
    public async Task ATrustingClientGeneratesOverTlsWhileAPlaintextOrUntrustingClientFails()
    {
        using var certificate = new TlsCertificate();
        await using var gateway = await GatewayProcess.StartTlsAsync(certificate);
        Assert.Equal("https", gateway.GrpcAddress.Scheme);

        using (var trusting = GrpcChannel.ForAddress(gateway.GrpcAddress, new GrpcChannelOptions { HttpHandler = certificate.TrustingHandler() }))
        {
            var reply = await new ImageGeneration.ImageGenerationClient(trusting).GenerateAsync(Request, deadline: DateTime.UtcNow.AddSeconds(60));
            Assert.Single(reply.Images);
        }
        using (var ready = await gateway.Rest.GetAsync("/healthz/ready"))        // REST over https, trusting the certificate
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

        var plaintextAddress = new UriBuilder(gateway.GrpcAddress) { Scheme = "http" }.Uri;
        using (var plaintext = GrpcChannel.ForAddress(plaintextAddress))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new ImageGeneration.ImageGenerationClient(plaintext).GenerateAsync(Request, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
            Assert.NotEqual(StatusCode.OK, error.StatusCode);
        }
        using (var untrusting = GrpcChannel.ForAddress(gateway.GrpcAddress))     // the system's roots do not include it
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new ImageGeneration.ImageGenerationClient(untrusting).GenerateAsync(Request, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
            Assert.Contains("SSL", error.ToString(), StringComparison.OrdinalIgnoreCase);   // the handshake refused the certificate
        }
    }
}
