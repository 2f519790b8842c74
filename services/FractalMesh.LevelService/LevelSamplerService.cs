using FractalMesh.Protos.Level;
using FractalMesh.Rpc;
using Grpc.Core;
using static Google.Rpc.BadRequest.Types;
using GrpcLevelSampler = FractalMesh.Protos.Level.LevelSampler;

namespace FractalMesh.LevelService;

/// <summary>
/// <c>fractalmesh.level.v1.LevelSampler</c>: validates a call against the level it names, queues its rows for a shared
/// forward pass and answers its patches. Errors are statuses a caller can act on: INVALID_ARGUMENT naming the field,
/// RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE while the model loads.
/// </summary>
public sealed class LevelSamplerService(ModelLoader loader, RowBatcher batcher, ILogger<LevelSamplerService> logger)
    : GrpcLevelSampler.LevelSamplerBase
{
    public override async Task<SamplePatchesResponse> SamplePatches(SamplePatchesRequest request, ServerCallContext context)
    {
        var levels = loader.Served
            ?? throw new RpcException(new Status(StatusCode.Unavailable, "the model is still loading; retry shortly (readiness turns SERVING when it is loaded)"));
        if (!levels.Shapes.TryGetValue(request.Level, out var shape))
            throw PatchRowCodec.InvalidArgument([new FieldViolation { Field = "level", Description = $"is {request.Level}, this service serves {levels.Description}" }]);
        PatchRowCodec.Validate(request, shape);
        try
        {
            var patches = await batcher.SampleAsync(request, context.Deadline, context.CancellationToken);
            return PatchRowCodec.ToResponse(patches, request.Rows.Count, request.PatchSize);
        }
        catch (Exception e) when (e is not RpcException and not OperationCanceledException)
        {
            logger.LogError(e, "level {Level}: sampling failed", request.Level);
            throw new RpcException(new Status(StatusCode.Internal, $"level {request.Level} failed to sample: {e.Message}"));
        }
    }
}
