using System.Runtime.CompilerServices;
using FractalMesh.Protos.Api;
using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;

namespace FractalMesh.Client;

/// <summary>
/// One client for the gateway's public gRPC API (<c>protos/fractalmesh.proto</c>): the model's description, generate,
/// inpaint and outpaint, and jobs (submit, get, cancel, watch). Each unary call gets the deadline
/// <see cref="FractalMeshClientOptions.Timeout"/>; calls are retried by the channel only on <c>Unavailable</c> (the call
/// reached no working gateway, so sending it again is safe).
/// Errors are the gateway's <see cref="RpcException"/>s; <see cref="FieldErrors"/> reads a field-by-field
/// <c>INVALID_ARGUMENT</c>. Thread-safe; dispose it to close the channel.
/// </summary>
public sealed class FractalMeshClient : IDisposable
{
    readonly GrpcChannel channel;
    readonly FractalMeshClientOptions options;

    /// <summary>A client for the gateway at <paramref name="address"/> with the default options.</summary>
    public FractalMeshClient(Uri address, string? apiKey = null) : this(new FractalMeshClientOptions { Address = address, ApiKey = apiKey }) { }

    /// <summary>A client with the given options.</summary>
    public FractalMeshClient(FractalMeshClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Address is not { IsAbsoluteUri: true, Scheme: "http" or "https" })
            throw new ArgumentException($"the gateway address must be an absolute http(s) URL, got '{options.Address}'", nameof(options));
        if (options.MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(options), $"MaxAttempts must be at least 1, got {options.MaxAttempts}");
        this.options = options;
        channel = GrpcChannel.ForAddress(options.Address, ChannelOptions(options));
        CallInvoker invoker = channel.CreateCallInvoker();
        if (options.ApiKey is { Length: > 0 } key)
            invoker = invoker.Intercept(metadata =>
            {
                metadata.Add("Authorization", $"Bearer {key}");
                return metadata;
            });
        Images = new ImageGeneration.ImageGenerationClient(invoker);
        Jobs = new Protos.Api.Jobs.JobsClient(invoker);
    }

    /// <summary>The generated stub of the image methods on this client's channel, for calls with options of the caller's own.</summary>
    public ImageGeneration.ImageGenerationClient Images { get; }

    /// <summary>The generated stub of the job methods on this client's channel.</summary>
    public Protos.Api.Jobs.JobsClient Jobs { get; }

    /// <summary>The served model: canvas size, classes, levels, iterations, limits and its recommended settings.</summary>
    public async Task<DescribeModelResponse> DescribeModelAsync(CancellationToken cancel = default) =>
        await Images.DescribeModelAsync(new DescribeModelRequest(), Call(cancel));

    /// <summary>Generates <c>count</c> images per class label; image <c>i</c> uses seed + <c>i</c>.</summary>
    public async Task<GenerateResponse> GenerateAsync(GenerateRequest request, CancellationToken cancel = default) =>
        await Images.GenerateAsync(request, Call(cancel));

    /// <summary>Regenerates the white part of the mask, keeping every other pixel.</summary>
    public async Task<GenerateResponse> InpaintAsync(InpaintRequest request, CancellationToken cancel = default) =>
        await Images.InpaintAsync(request, Call(cancel));

    /// <summary>Places a smaller image on the model's canvas and generates the rest.</summary>
    public async Task<GenerateResponse> OutpaintAsync(OutpaintRequest request, CancellationToken cancel = default) =>
        await Images.OutpaintAsync(request, Call(cancel));

    /// <summary>Submits a job; it answers at once with the job, queued.</summary>
    public async Task<Job> SubmitJobAsync(SubmitJobRequest request, CancellationToken cancel = default) =>
        await Jobs.SubmitJobAsync(request, Call(cancel));

    /// <summary>Submits a generation as a job, with an optional idempotency key.</summary>
    public Task<Job> SubmitJobAsync(GenerateRequest request, string? idempotencyKey = null, CancellationToken cancel = default) =>
        SubmitJobAsync(new SubmitJobRequest { Generate = request, IdempotencyKey = idempotencyKey ?? "" }, cancel);

    /// <summary>Submits an inpainting as a job, with an optional idempotency key.</summary>
    public Task<Job> SubmitJobAsync(InpaintRequest request, string? idempotencyKey = null, CancellationToken cancel = default) =>
        SubmitJobAsync(new SubmitJobRequest { Inpaint = request, IdempotencyKey = idempotencyKey ?? "" }, cancel);

    /// <summary>Submits an outpainting as a job, with an optional idempotency key.</summary>
    public Task<Job> SubmitJobAsync(OutpaintRequest request, string? idempotencyKey = null, CancellationToken cancel = default) =>
        SubmitJobAsync(new SubmitJobRequest { Outpaint = request, IdempotencyKey = idempotencyKey ?? "" }, cancel);

    /// <summary>The job as it stands.</summary>
    public async Task<Job> GetJobAsync(string id, CancellationToken cancel = default) =>
        await Jobs.GetJobAsync(new GetJobRequest { Id = id }, Call(cancel));

    /// <summary>Cancels the job within one level-0 step; a finished job comes back unchanged.</summary>
    public async Task<Job> CancelJobAsync(string id, CancellationToken cancel = default) =>
        await Jobs.CancelJobAsync(new CancelJobRequest { Id = id }, Call(cancel));

    /// <summary>
    /// The job's events (queued, running with a preview after every level-0 step, then done, failed or cancelled) as they
    /// happen, from the start or after <paramref name="afterEventId"/>; the enumeration ends after the last one.
    /// </summary>
    public async IAsyncEnumerable<JobEvent> WatchJobAsync(string id, string? afterEventId = null, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        DateTime? deadline = options.WatchTimeout is { } timeout ? DateTime.UtcNow + timeout : null;
        using var call = Jobs.WatchJob(new WatchJobRequest { Id = id, AfterEventId = afterEventId ?? "" }, new CallOptions(deadline: deadline, cancellationToken: cancel));
        await foreach (var e in call.ResponseStream.ReadAllAsync(cancel))
        {
            yield return e;
            if (IsFinished(e.State)) yield break;
        }
    }

    /// <summary>Whether a job in <paramref name="state"/> will change no more: done, failed or cancelled.</summary>
    public static bool IsFinished(JobState state) => state is JobState.Done or JobState.Failed or JobState.Cancelled;

    /// <summary>The fields (<c>params.cfg</c>) and descriptions a gateway's <c>INVALID_ARGUMENT</c> names; empty for other errors.</summary>
    public static IReadOnlyList<(string Field, string Description)> FieldErrors(RpcException e) =>
        e.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations.Select(v => (v.Field, v.Description)).ToArray() ?? [];

    /// <inheritdoc />
    public void Dispose() => channel.Dispose();

    CallOptions Call(CancellationToken cancel) => new(deadline: DateTime.UtcNow + options.Timeout, cancellationToken: cancel);

    static GrpcChannelOptions ChannelOptions(FractalMeshClientOptions options)
    {
        var serviceConfig = new ServiceConfig();
        if (options.MaxAttempts > 1)
            serviceConfig.MethodConfigs.Add(new MethodConfig
            {
                Names = { MethodName.Default },
                // Only Unavailable: the call reached no working gateway. RESOURCE_EXHAUSTED is the gateway's backpressure
                // and is the caller's to act on.
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = options.MaxAttempts,
                    InitialBackoff = TimeSpan.FromMilliseconds(200),
                    MaxBackoff = TimeSpan.FromSeconds(5),
                    BackoffMultiplier = 2,
                    RetryableStatusCodes = { StatusCode.Unavailable },
                },
            });
        return new GrpcChannelOptions
        {
            ServiceConfig = serviceConfig,
            MaxRetryAttempts = options.MaxAttempts,
            // A call is retried only while its request is buffered: keep a request with large PNGs retryable.
            MaxRetryBufferPerCallSize = options.MaxMessageBytes,
            MaxSendMessageSize = options.MaxMessageBytes,
            MaxReceiveMessageSize = options.MaxMessageBytes,
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        };
    }
}
