using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Jobs;

/// <summary>
/// At most <see cref="GatewayOptions.MaxWatchers"/> job watches open at once on this replica: each holds a stream, a task
/// and reads on the job store for as long as its job runs, so a flood of them is refused at once with RESOURCE_EXHAUSTED
/// (HTTP 429 through JSON transcoding) and the watches already open keep their events.
/// </summary>
public sealed class WatcherGate(IOptions<GatewayOptions> options)
{
    readonly int limit = options.Value.MaxWatchers;
    int open;

    /// <summary>Watches open now.</summary>
    public int Open => Volatile.Read(ref open);

    /// <summary>Admits one watch; disposing the result frees its place. Throws RESOURCE_EXHAUSTED when the limit is reached.</summary>
    public IDisposable Enter()
    {
        if (Interlocked.Increment(ref open) > limit)
        {
            Interlocked.Decrement(ref open);
            throw new Google.Rpc.Status
            {
                Code = (int)Code.ResourceExhausted,
                Message = $"this gateway already serves {limit} job watches (Gateway:MaxWatchers); retry later or poll GetJob",
                Details = { Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromSeconds(2)) }) },
            }.ToRpcException();
        }
        return new Place(this);
    }

    sealed class Place(WatcherGate gate) : IDisposable
    {
        int disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0) Interlocked.Decrement(ref gate.open);
        }
    }
}
