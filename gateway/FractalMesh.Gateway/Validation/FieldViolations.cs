using Google.Rpc;
using Grpc.Core;

namespace FractalMesh.Gateway.Validation;

/// <summary>
/// Collects what is wrong with a request, field by field, and turns it into one <c>INVALID_ARGUMENT</c> carrying a
/// <c>google.rpc.BadRequest</c> (HTTP 400 through JSON transcoding). Field paths use the proto names (<c>params.cfg</c>).
/// </summary>
/// <param name="prefix">Path of the message being checked inside the request (<c>generate.</c> in a SubmitJobRequest), or empty.</param>
public sealed class FieldViolations(string prefix = "")
{
    readonly BadRequest badRequest = new();

    public bool Any => badRequest.FieldViolations.Count > 0;

    public void Add(string field, string description) =>
        badRequest.FieldViolations.Add(new BadRequest.Types.FieldViolation { Field = prefix + field, Description = description });

    /// <summary>Throws the collected violations, if any.</summary>
    public void ThrowIfAny()
    {
        if (!Any) return;
        var message = string.Join("; ", badRequest.FieldViolations.Select(v => $"{v.Field}: {v.Description}"));
        throw new Google.Rpc.Status
        {
            Code = (int)Code.InvalidArgument,
            Message = message,
            Details = { Google.Protobuf.WellKnownTypes.Any.Pack(badRequest) },
        }.ToRpcException();
    }
}
