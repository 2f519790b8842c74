using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using Grpc.Core;
using Grpc.Net.Client;
using Polly;
using Polly.CircuitBreaker;
using GrpcLevelSampler = FractalMesh.Protos.Level.LevelSampler;

namespace FractalMesh.Rpc;

/// <summary>
/// Level 0 in level services, for a caller that holds no weights (the distributed gateway): sends labels, seeds and known
/// pixels to a level-0 replica and follows its stream of step events. If the replica dies mid-generation, the call
/// resumes on another replica from the last step it reported (the partial images, the original mask), which gives the
/// bytes of an uninterrupted run. The channel retries Unavailable before any event arrived and balances round-robin; a
/// Polly circuit breaker keyed on Unavailable and DeadlineExceeded fails calls fast while level 0 keeps failing.
/// </summary>
public sealed class RemoteImageGenerator : IDisposable
{
    readonly RemoteLevelOptions options;
    readonly GrpcChannel channel;
    readonly GrpcLevelSampler.LevelSamplerClient client;
    readonly ResiliencePipeline pipeline;
    readonly CircuitBreakerStateProvider circuit = new();

    public RemoteImageGenerator(RemoteLevelOptions options)
    {
        if (options.Level != 0) throw new ArgumentException($"whole images start at level 0, not {options.Level}", nameof(options));
        if (options.Addresses.Count == 0) throw new ArgumentException("level 0 needs at least one address", nameof(options));
        this.options = options;
        (channel, _) = RemotePatchSampler.OpenChannel(options);
        client = new GrpcLevelSampler.LevelSamplerClient(channel);
        pipeline = RemotePatchSampler.Breaker(options, circuit);
    }

    /// <summary>Whether calls go through (Closed, HalfOpen) or fail fast (Open, Isolated).</summary>
    public CircuitState Circuit => circuit.CircuitState;

    /// <summary>Level-0 resumptions after a replica failed mid-generation, since the start.</summary>
    public long Resumptions => Interlocked.Read(ref resumptions);
    long resumptions;

    /// <summary>
    /// Generates every image (R × 3 × S × S bytes, request order). <paramref name="onStep"/> sees each level-0 step as the
    /// service reports it. Errors surface as <see cref="RpcException"/> with level 0's status.
    /// </summary>
    public async Task<byte[]> GenerateAsync(IReadOnlyList<ImageRequest> images, SamplingOptions sampling, int startStep,
        Func<LevelStep, ValueTask>? onStep, CancellationToken cancel)
    {
        var current = images;
        int start = startStep, failures = 0;
        LevelStep? last = null;
        while (true)
        {
            try
            {
                return await CallAsync(ImageCodec.ToMessage(current, sampling, start, streamSteps: true), async step =>
                {
                    last = step;
                    if (onStep is not null) await onStep(step).ConfigureAwait(false);
                }, cancel).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Aborted
                && last is { } reached && ++failures < Math.Max(2, options.MaxAttempts) && !cancel.IsCancellationRequested)
            {
                // The replica got this far: finish from its last step on any replica.
                if (reached.Step + 1 >= reached.Steps) return reached.Partial;
                Interlocked.Increment(ref resumptions);
                current = Resumed(images, reached);
                start = reached.Step + 1;
                last = null;
            }
        }
    }

    /// <summary>The images as a resumption from <paramref name="step"/>: its partial image as known pixels, the original masks kept.</summary>
    static IReadOnlyList<ImageRequest> Resumed(IReadOnlyList<ImageRequest> images, LevelStep step)
    {
        int n = images.Count, pixels = step.Done.Length / n, bytes = 3 * pixels;
        return images.Select((image, i) => image with
        {
            KnownPixels = step.Partial.AsSpan(i * bytes, bytes).ToArray(),
            KnownMask = step.Done.AsSpan(i * pixels, pixels).ToArray(),
            OriginalKnownMask = image.OriginalKnownMask ?? image.KnownMask ?? new bool[pixels],
        }).ToList();
    }

    async Task<byte[]> CallAsync(GenerateImagesRequest message, Func<LevelStep, ValueTask> onStep, CancellationToken cancel)
    {
        var deadline = CallDeadline.For(options.Timeout);
        try
        {
            return await pipeline.ExecuteAsync(async token =>
            {
                using var call = client.GenerateImages(message, deadline: deadline, cancellationToken: token);
                await foreach (var e in call.ResponseStream.ReadAllAsync(token).ConfigureAwait(false))
                {
                    if (e.Final) return e.Images.ToByteArray();
                    await onStep(ImageCodec.FromStepEvent(e)).ConfigureAwait(false);
                }
                throw new RpcException(new Status(StatusCode.Internal, "level 0 ended its stream without the final images"));
            }, cancel).ConfigureAwait(false);
        }
        catch (BrokenCircuitException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable,
                $"level 0 ({string.Join(", ", options.Addresses)}) keeps failing; its circuit is open: {e.Message}"));
        }
    }

    public void Dispose() => channel.Dispose();
}
