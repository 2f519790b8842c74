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
