using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using FractalMesh.Rpc;
using Grpc.Core;
using static Google.Rpc.BadRequest.Types;
using GrpcLevelSampler = FractalMesh.Protos.Level.LevelSampler;

namespace FractalMesh.LevelService;

/// <summary>
/// <c>fractalmesh.level.v1.LevelSampler</c>: validates a call against the level it names and runs it through
/// <see cref="LevelCalls"/>, where its rows share forward passes with every other call in flight. Errors are statuses a
/// caller can act on: INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED when the level admits no more rows,
/// UNAVAILABLE while the model loads.
/// </summary>
public sealed class LevelSamplerService(ModelLoader loader, LevelCalls calls, ILogger<LevelSamplerService> logger)
    : GrpcLevelSampler.LevelSamplerBase
{
    public override async Task<SamplePatchesResponse> SamplePatches(SamplePatchesRequest request, ServerCallContext context)
    {
        var levels = Loaded();
        if (!levels.Shapes.TryGetValue(request.Level, out var shape))
            throw PatchRowCodec.InvalidArgument([new FieldViolation { Field = "level", Description = $"is {request.Level}, this service serves {levels.Description}" }]);
        PatchRowCodec.Validate(request, shape);
        try
        {
            var patches = await calls.SampleAsync(levels, request, context.Deadline, context.CancellationToken);
            return PatchRowCodec.ToResponse(patches, request.Rows.Count, request.PatchSize);
        }
        catch (Exception e) when (e is not RpcException and not OperationCanceledException)
        {
            logger.LogError(e, "level {Level}: sampling failed", request.Level);
            throw new RpcException(new Status(StatusCode.Internal, $"level {request.Level} failed to sample: {e.Message}"));
        }
    }

    public override async Task GenerateImages(GenerateImagesRequest request, IServerStreamWriter<GenerateImagesEvent> responseStream, ServerCallContext context)
    {
        var levels = Loaded();
        if (levels.First != 0)
            throw PatchRowCodec.InvalidArgument([new FieldViolation { Field = "images", Description = $"whole images start at level 0; this service serves {levels.Description}" }]);
        var (images, sampling) = ImageCodec.FromMessage(request, levels.Model.Config);
        // Step events are written in order by one writer while the generation goes on: a slow reader delays the next
        // write, never the shared forward passes.
        var events = System.Threading.Channels.Channel.CreateUnbounded<GenerateImagesEvent>(new() { SingleReader = true, SingleWriter = true });
        Func<LevelStep, ValueTask>? onStep = request.StreamSteps ? step => events.Writer.WriteAsync(ImageCodec.StepEvent(step)) : null;
        var writer = Task.Run(async () =>
        {
            await foreach (var e in events.Reader.ReadAllAsync(context.CancellationToken)) await responseStream.WriteAsync(e, context.CancellationToken);
        });
        try
        {
            var pixels = await calls.GenerateAsync(levels, images, sampling, request.StartStep, onStep, context.Deadline, context.CancellationToken);
            events.Writer.TryWrite(new GenerateImagesEvent { Final = true, Images = Google.Protobuf.ByteString.CopyFrom(pixels) });
        }
        catch (Exception e) when (e is not RpcException and not OperationCanceledException)
        {
            logger.LogError(e, "level 0: generation failed");
            throw new RpcException(new Status(StatusCode.Internal, $"level 0 failed to generate: {e.Message}"));
        }
        finally
        {
            events.Writer.TryComplete();
        }
        await writer;
    }

    ServedLevels Loaded() => loader.Served
        ?? throw new RpcException(new Status(StatusCode.Unavailable, "the model is still loading; retry shortly (readiness turns SERVING when it is loaded)"));
}
