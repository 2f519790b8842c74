using System.Threading.RateLimiting;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// Admission to the generator (docs/ARCHITECTURE.md, Resilience and scale): at most <see cref="GatewayOptions.MaxConcurrentRequests"/> requests generate
/// at once and at most <see cref="GatewayOptions.MaxQueuedRequests"/> wait, oldest first; a request beyond that is refused
/// at once with RESOURCE_EXHAUSTED (HTTP 429 through JSON transcoding) instead of queuing without bound.
/// </summary>
public sealed class GenerationGate : IDisposable
{
    readonly ConcurrencyLimiter limiter;
    readonly GatewayOptions limits;

    public GenerationGate(IOptions<GatewayOptions> options)
    {
        limits = options.Value;
        limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = limits.MaxConcurrentRequests,
            QueueLimit = limits.MaxQueuedRequests,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>Waits for a generation slot; the lease frees it. Throws RESOURCE_EXHAUSTED when the queue is full.</summary>
    public async Task<IDisposable> EnterAsync(CancellationToken cancel)
    {
        var lease = await limiter.AcquireAsync(1, cancel);
        if (lease.IsAcquired) return lease;
        lease.Dispose();
        throw new Google.Rpc.Status
        {
            Code = (int)Code.ResourceExhausted,
            Message = $"the gateway is busy ({limits.MaxConcurrentRequests} generating, {limits.MaxQueuedRequests} waiting); retry later",
            Details = { Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromSeconds(1)) }) },
        }.ToRpcException();
    }

    public void Dispose() => limiter.Dispose();
}
