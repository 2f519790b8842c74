using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FractalMesh.Model.Sampling;
using Grpc.Core;
using Polly.CircuitBreaker;
using Xunit;

namespace FractalMesh.Rpc.Tests;

/// <summary>The client side without any server: nothing listens on the address.</summary>
public class RemotePatchSamplerUnitTests
{
    static string ClosedAddress()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return $"http://127.0.0.1:{port}";
    }

    [Fact]
    public async Task NoReplicaIsUnavailableAndRepeatedFailuresOpenTheCircuit()
    {
        using var sampler = new RemotePatchSampler(new RemoteLevelOptions
        {
            Addresses = [ClosedAddress()],
            Level = 1,
            Timeout = TimeSpan.FromSeconds(10),
            MaxAttempts = 2,
            BreakerMinimumThroughput = 3,
            BreakerFailureRatio = 0.5,
            BreakDuration = TimeSpan.FromSeconds(30),
        }, patchSize: 1);
        var message = TestModel.LevelOneMessage(2);

        for (int i = 0; i < 3; i++)
        {
            using var request = PatchRowCodec.ToPatchRequest(message);
            var error = await Assert.ThrowsAsync<RpcException>(() => sampler.SampleAsync(request));
            Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        }
        Assert.Equal(CircuitState.Open, sampler.Circuit);

        using var last = PatchRowCodec.ToPatchRequest(message);
        var watch = Stopwatch.StartNew();
        var open = await Assert.ThrowsAsync<RpcException>(() => sampler.SampleAsync(last));
        Assert.Equal(StatusCode.Unavailable, open.StatusCode);
        Assert.Contains("circuit", open.Status.Detail);
        // Well under the 10 s call timeout, with room for a loaded machine's pauses: the circuit answered, not the network.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"an open circuit fails fast, took {watch.Elapsed}");
    }

    [Fact]
    public void BadAddressesAreRefusedNamingTheAddress()
    {
        var error = Assert.Throws<ArgumentException>(() => new RemotePatchSampler(new RemoteLevelOptions { Addresses = ["level-1:5000"], Level = 1 }, 1));
        Assert.Contains("level-1:5000", error.Message);
        Assert.Throws<ArgumentException>(() => new RemotePatchSampler(new RemoteLevelOptions { Addresses = ["dns:///a:1", "http://b:2"], Level = 1 }, 1));
    }

    [Fact]
    public async Task NoRowsNeedNoCall()
    {
        using var sampler = new RemotePatchSampler(new RemoteLevelOptions { Addresses = [ClosedAddress()], Level = 1 }, 1);
        using var empty = new PatchRequest
        {
            Conds = [TorchSharp.torch.zeros(0, 4)], Size = 4, KnownPixels = [], KnownMask = [], Cfg = [], Temperature = [],
            FilterThreshold = [], NumIter = [1], Streams = [],
        };
        Assert.Empty(await sampler.SampleAsync(empty));
    }
}
