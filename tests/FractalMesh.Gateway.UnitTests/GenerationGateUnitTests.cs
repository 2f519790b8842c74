using FractalMesh.Gateway.Generation;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Xunit;

namespace FractalMesh.Gateway.UnitTests;

public sealed class GenerationGateUnitTests
{
    [Fact]
    public async Task AdmitsTheLimitQueuesOldestFirstAndRefusesBeyondTheQueue()
    {
        using var gate = new GenerationGate(Options.Create(new GatewayOptions { MaxConcurrentRequests = 1, MaxQueuedRequests = 2 }));
        var running = await gate.EnterAsync(CancellationToken.None);
        var first = gate.EnterAsync(CancellationToken.None);
        var second = gate.EnterAsync(CancellationToken.None);
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        var refused = await Assert.ThrowsAsync<RpcException>(() => gate.EnterAsync(CancellationToken.None));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("1 generating, 2 waiting", refused.Status.Detail);

        running.Dispose();
        var next = await first.WaitAsync(TimeSpan.FromSeconds(5));   // the oldest waiter goes first
        Assert.False(second.IsCompleted);
        next.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task ACancelledWaiterLeavesTheQueue()
    {
        using var gate = new GenerationGate(Options.Create(new GatewayOptions { MaxConcurrentRequests = 1, MaxQueuedRequests = 1 }));
        using var running = await gate.EnterAsync(CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var waiting = gate.EnterAsync(cancel.Token);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        var again = gate.EnterAsync(CancellationToken.None);   // its place in the queue is free again
        Assert.False(again.IsCompleted);
        running.Dispose();
        (await again.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }
}

public sealed class WatcherGateUnitTests
{
    [Fact]
    public void AFloodBeyondTheLimitIsRefusedAndTheOpenWatchesKeepTheirPlaces()
    {
        var gate = new FractalMesh.Gateway.Jobs.WatcherGate(Options.Create(new GatewayOptions { MaxWatchers = 3 }));
        var open = Enumerable.Range(0, 3).Select(_ => gate.Enter()).ToList();
        for (int i = 0; i < 50; i++)
        {
            var refused = Assert.Throws<RpcException>(() => gate.Enter());
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Contains("Gateway:MaxWatchers", refused.Status.Detail);
        }
        Assert.Equal(3, gate.Open);
        open[0].Dispose();
        open[0].Dispose();                       // twice: frees one place, not two
        Assert.Equal(2, gate.Open);
        open.Add(gate.Enter());
        Assert.Throws<RpcException>(() => gate.Enter());
    }
}
