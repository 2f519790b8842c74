using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using Polly;
using Polly.CircuitBreaker;
using GrpcLevelSampler = FractalMesh.Protos.Level.LevelSampler;

namespace FractalMesh.Rpc;

/// <summary>
/// A level sampled by remote replicas (docs/ARCHITECTURE.md, Processes; Resilience and scale): encodes the rows with <see cref="PatchRowCodec"/>, spreads a large
/// request over the replicas and gathers the patches in order. One deadline per call, inherited from
/// <see cref="CallDeadline"/> or <see cref="RemoteLevelOptions.Timeout"/>; the channel retries only Unavailable (its service
/// config) and balances round-robin; a Polly circuit breaker keyed on Unavailable and DeadlineExceeded fails calls fast
/// while the level keeps failing. RESOURCE_EXHAUSTED is backpressure from a working level, not a failure: it reaches the
/// caller and leaves the circuit closed.
/// </summary>
public sealed class RemotePatchSampler : IPatchSampler, IDisposable
{
    /// <summary>The statuses that count against the circuit: the level is down or too slow (not: busy).</summary>
    public static readonly IReadOnlySet<StatusCode> BreakerStatuses =
        new HashSet<StatusCode> { StatusCode.Unavailable, StatusCode.DeadlineExceeded };

    readonly RemoteLevelOptions options;
    readonly GrpcChannel channel;
    readonly GrpcLevelSampler.LevelSamplerClient client;
    readonly ResiliencePipeline pipeline;
    readonly CircuitBreakerStateProvider circuit = new();
    readonly int replicas;

    /// <param name="options">Addresses, level and limits.</param>
    /// <param name="patchSize">The <see cref="IPatchSampler.PatchSize"/> of the sampler this one stands for.</param>
    public RemotePatchSampler(RemoteLevelOptions options, int patchSize)
    {
        this.options = options;
        PatchSize = patchSize;
        if (options.Addresses.Count == 0) throw new ArgumentException("a remote level needs at least one address", nameof(options));
        if (options.MaxRowsPerCall < 1) throw new ArgumentException("MaxRowsPerCall must be 1 or more", nameof(options));
        (channel, replicas) = OpenChannel(options);
        client = new GrpcLevelSampler.LevelSamplerClient(channel);
        pipeline = Breaker(options, circuit);
    }

    /// <summary>The circuit breaker of a remote level's calls, keyed on <see cref="BreakerStatuses"/>, reporting to <paramref name="circuit"/>.</summary>
    internal static ResiliencePipeline Breaker(RemoteLevelOptions options, CircuitBreakerStateProvider circuit) =>
        new ResiliencePipelineBuilder()
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<RpcException>(e => BreakerStatuses.Contains(e.StatusCode)),
                FailureRatio = options.BreakerFailureRatio,
                MinimumThroughput = options.BreakerMinimumThroughput,
                SamplingDuration = options.BreakerSamplingDuration,
                BreakDuration = options.BreakDuration,
                StateProvider = circuit,
            })
            .Build();

    public int PatchSize { get; }

    /// <summary>The level the replicas sample.</summary>
    public int Level => options.Level;

    /// <summary>Whether calls go through (Closed, HalfOpen) or fail fast (Open, Isolated).</summary>
    public CircuitState Circuit => circuit.CircuitState;

    /// <summary>
    /// Completes every row's patch remotely. Encoding is synchronous tensor work done before any wait; the calls then run
    /// concurrently and no thread waits for them. Errors surface as <see cref="RpcException"/> with the level's status (an
    /// open circuit as Unavailable); cancellation as <see cref="OperationCanceledException"/>.
    /// </summary>
    public Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
    {
        if (request.Rows == 0) return Task.FromResult(Array.Empty<byte>());
        var message = PatchRowCodec.ToMessage(request, options.Level);
        var deadline = CallDeadline.For(options.Timeout);
        var parts = PatchRowCodec.Split(message, PartsFor(request.Rows));
        return SampleAsync(parts, deadline, cancel);
    }

    /// <summary>Sends already-encoded rows (one call per part, concurrently) and gathers the patches in order.</summary>
    public async Task<byte[]> SampleAsync(IReadOnlyList<SamplePatchesRequest> parts, DateTime deadline, CancellationToken cancel)
    {
        using var failFast = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        async Task<byte[]> One(SamplePatchesRequest part)
        {
            try { return await CallAsync(part, deadline, failFast.Token).ConfigureAwait(false); }
            catch when (!cancel.IsCancellationRequested) { failFast.Cancel(); throw; }   // the others are wasted work now
        }
        var tasks = parts.Select(One).ToArray();
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            // The first real failure, not a sibling cancelled because of it.
            var real = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!)
                .FirstOrDefault(e => e is not OperationCanceledException || cancel.IsCancellationRequested);
            if (real is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(real);
            throw;
        }
        if (tasks.Length == 1) return tasks[0].Result;
        var gathered = new byte[tasks.Sum(t => t.Result.Length)];
        int at = 0;
        foreach (var t in tasks) { t.Result.CopyTo(gathered, at); at += t.Result.Length; }
        return gathered;
    }

    async Task<byte[]> CallAsync(SamplePatchesRequest part, DateTime deadline, CancellationToken cancel)
    {
        try
        {
            var response = await pipeline.ExecuteAsync(
                async token => await client.SamplePatchesAsync(part, deadline: deadline, cancellationToken: token).ConfigureAwait(false),
                cancel).ConfigureAwait(false);
            return PatchRowCodec.FromResponse(response, part.Rows.Count, part.PatchSize);
        }
        catch (BrokenCircuitException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable,
                $"level {options.Level} ({string.Join(", ", options.Addresses)}) keeps failing; its circuit is open: {e.Message}"));
        }
    }

    /// <summary>How many calls <paramref name="rows"/> rows go out in: enough to respect MaxRowsPerCall, and one per replica when each gets enough rows.</summary>
    int PartsFor(int rows)
    {
        int byLimit = (rows + options.MaxRowsPerCall - 1) / options.MaxRowsPerCall;
        int shards = options.Shards > 0 ? options.Shards : replicas;
        int byReplica = Math.Min(shards, Math.Max(1, rows / Math.Max(1, options.MinRowsPerShard)));
        return Math.Max(byLimit, byReplica);
    }

    internal static (GrpcChannel Channel, int Replicas) OpenChannel(RemoteLevelOptions options)
    {
        var serviceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
        if (options.MaxAttempts > 1)
            serviceConfig.MethodConfigs.Add(new MethodConfig
            {
                Names = { MethodName.Default },
                // Only Unavailable: the call never reached a working replica, so sending it again is always safe.
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = options.MaxAttempts,
                    InitialBackoff = TimeSpan.FromMilliseconds(50),
                    MaxBackoff = TimeSpan.FromSeconds(2),
                    BackoffMultiplier = 2,
                    RetryableStatusCodes = { StatusCode.Unavailable },
                },
            });
        var channelOptions = new GrpcChannelOptions
        {
            ServiceConfig = serviceConfig,
            MaxRetryAttempts = Math.Max(1, options.MaxAttempts),
            // A call is retried only while its request is buffered: let a large batch of rows stay retryable.
            MaxRetryBufferPerCallSize = options.MaxMessageBytes,
            MaxRetryBufferSize = 4L * options.MaxMessageBytes,
            MaxSendMessageSize = options.MaxMessageBytes,
            MaxReceiveMessageSize = options.MaxMessageBytes,
            ThrowOperationCanceledOnCancellation = true,
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                SslOptions = LevelTls.ClientOptions(options.CaCertificatePath),
            },
        };
        var first = options.Addresses[0];
        if (first.StartsWith("dns:", StringComparison.OrdinalIgnoreCase))
        {
            if (options.Addresses.Count > 1) throw new ArgumentException($"a dns: address stands alone; got {options.Addresses.Count} addresses", nameof(options));
            channelOptions.Credentials = LevelTls.Credentials(options.Tls, options.CallSecret, channelOptions);
            channelOptions.ServiceProvider = new Resolvers(new DnsResolverFactory(options.DnsRefreshInterval));
            return (GrpcChannel.ForAddress(first, channelOptions), 1);
        }
        var uris = options.Addresses.Select(a => Uri.TryCreate(a, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"
            ? u : throw new ArgumentException($"'{a}' is not an http://host:port or dns:///host:port address", nameof(options))).ToList();
        if (uris.Select(u => u.Scheme).Distinct().Count() > 1) throw new ArgumentException("replica addresses mix http and https", nameof(options));
        var replicas = uris.Select(u => new BalancerAddress(u.Host, u.Port)).ToArray();
        channelOptions.Credentials = LevelTls.Credentials(uris[0].Scheme == "https", options.CallSecret, channelOptions);
        channelOptions.ServiceProvider = new Resolvers(new StaticResolverFactory(_ => replicas));
        // The channel's name is the authority of every call, and the name TLS checks the replicas' certificate against.
        string name = $"level-{options.Level}";
        if (uris[0].Scheme == "https")
        {
            if (uris.Select(u => u.Host).Distinct(StringComparer.OrdinalIgnoreCase).Count() > 1)
                throw new ArgumentException("https replicas listed by address must share one host name (their certificate's); list one dns:/// address instead", nameof(options));
            name = uris[0].Authority;
        }
        return (GrpcChannel.ForAddress($"static:///{name}", channelOptions), replicas.Length);
    }

    /// <summary>The only service the channel asks its provider for here: the resolver (a static list, or DNS with a refresh interval).</summary>
    sealed class Resolvers(ResolverFactory factory) : IServiceProvider
    {
        public object? GetService(Type serviceType) =>
            serviceType == typeof(IEnumerable<ResolverFactory>) ? new[] { factory } : null;
    }

    public void Dispose() => channel.Dispose();
}
