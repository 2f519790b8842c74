using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using static TorchSharp.torch;

namespace FractalMesh.Rpc;

/// <summary>
/// The one converter between the in-process contract (<see cref="PatchRequest"/>, patch bytes) and the wire messages of
/// <c>protos/level.proto</c>. Conditions travel as little-endian float32, pixels as bytes, so a row decodes to bitwise the
/// values it was encoded from (docs/ARCHITECTURE.md, The level contract). Every decoding validates sizes first and answers bad input with an
/// <see cref="RpcException"/> of status InvalidArgument that names the field and carries a <c>google.rpc.BadRequest</c>.
/// </summary>
public static class PatchRowCodec
{
    /// <summary>How many field violations one error lists at most.</summary>
    const int MaxViolations = 16;

    /// <summary>
    /// Encodes <paramref name="request"/> for <paramref name="level"/>. Synchronous tensor work: conditions are read to
    /// the CPU as float32. A row with no known pixel sends empty <c>known_pixels</c> and <c>known_mask</c>.
    /// </summary>
    public static SamplePatchesRequest ToMessage(PatchRequest request, int level)
    {
        int rows = request.Rows, size = request.Size, pixels = size * size;
        if (request.Conds.Length == 0) throw new ArgumentException("a request needs at least one condition", nameof(request));
        int condCount = request.Conds.Length, condWidth = (int)request.Conds[0].shape[1];
        var message = new SamplePatchesRequest
        {
            Level = level,
            PatchSize = size,
            CondCount = condCount,
            CondWidth = condWidth,
            Guided = request.Guided,
            LinearCfg = request.LinearCfg,
            LinearTemperature = request.LinearTemperature,
            StartStep = request.StartStep,
        };
        message.NumIter.AddRange(request.NumIter);
        var conds = RowMajor(request.Conds, rows, condWidth);
        var nullConds = request.Guided ? RowMajor(request.NullConds!, rows, condWidth) : null;
        int rowFloats = condCount * condWidth;
        for (int r = 0; r < rows; r++)
        {
            var row = new PatchRow
            {
                Conds = FloatBytes(conds.AsSpan(r * rowFloats, rowFloats)),
                Cfg = request.Cfg[r],
                Temperature = request.Temperature[r],
                FilterThreshold = request.FilterThreshold[r],
                Stream = request.Streams[r].Key,
            };
            if (nullConds is not null) row.NullConds = FloatBytes(nullConds.AsSpan(r * rowFloats, rowFloats));
            var mask = request.KnownMask.AsSpan(r * pixels, pixels);
            if (mask.Contains(true))
            {
                row.KnownPixels = ByteString.CopyFrom(request.KnownPixels, r * 3 * pixels, 3 * pixels);
                var maskBytes = new byte[pixels];
                for (int i = 0; i < pixels; i++) maskBytes[i] = mask[i] ? (byte)1 : (byte)0;
                row.KnownMask = ByteString.CopyFrom(maskBytes);
            }
            if (request.StartStep > 0 && request.OriginalKnownMask is { } original && original.AsSpan(r * pixels, pixels).Contains(true))
                row.OriginalKnownMask = ByteString.CopyFrom(original.Skip(r * pixels).Take(pixels).Select(b => b ? (byte)1 : (byte)0).ToArray());
            message.Rows.Add(row);
        }
        return message;
    }

    /// <summary>
    /// Cuts a request into at most <paramref name="parts"/> requests of contiguous, near-equal row ranges (in order, none
    /// empty) with the same header. Rows carry their guidance partner, so pairs never separate.
    /// </summary>
    public static IReadOnlyList<SamplePatchesRequest> Split(SamplePatchesRequest message, int parts)
    {
        int rows = message.Rows.Count;
        parts = Math.Clamp(parts, 1, Math.Max(1, rows));
        if (parts == 1) return [message];
        var result = new List<SamplePatchesRequest>(parts);
        for (int p = 0, start = 0; p < parts; p++)
        {
            int count = rows / parts + (p < rows % parts ? 1 : 0);
            var part = HeaderOf(message);
            part.Rows.AddRange(message.Rows.Skip(start).Take(count));
            result.Add(part);
            start += count;
        }
        return result;
    }

    /// <summary>A request with the header of <paramref name="message"/> and no rows.</summary>
    public static SamplePatchesRequest HeaderOf(SamplePatchesRequest message)
    {
        var header = new SamplePatchesRequest
        {
            Level = message.Level,
            PatchSize = message.PatchSize,
            CondCount = message.CondCount,
            CondWidth = message.CondWidth,
            Guided = message.Guided,
            LinearCfg = message.LinearCfg,
            LinearTemperature = message.LinearTemperature,
            StartStep = message.StartStep,
        };
        header.NumIter.AddRange(message.NumIter);
        return header;
    }

    /// <summary>
    /// Checks every size and value of <paramref name="message"/>, and where <paramref name="shape"/> is given that it fits
    /// the level; throws InvalidArgument naming each offending field (e.g. <c>rows[3].conds</c>).
    /// </summary>
    public static void Validate(SamplePatchesRequest message, LevelShape? shape = null)
    {
        var violations = new List<BadRequest.Types.FieldViolation>();
        void Add(string field, string description)
        {
            if (violations.Count < MaxViolations) violations.Add(new() { Field = field, Description = description });
        }

        if (shape is not null)
        {
            if (message.Level != shape.Level) Add("level", $"is {message.Level}, this endpoint samples level {shape.Level}");
            if (message.PatchSize != shape.PatchSize) Add("patch_size", $"is {message.PatchSize}, level {shape.Level} completes patches of side {shape.PatchSize}");
            if (message.CondWidth != shape.CondWidth) Add("cond_width", $"is {message.CondWidth}, level {shape.Level} reads conditions of width {shape.CondWidth}");
            if (message.CondCount < shape.MinConds || message.CondCount > shape.MaxConds)
                Add("cond_count", shape.MinConds == shape.MaxConds
                    ? $"is {message.CondCount}, level {shape.Level} reads {shape.MinConds} condition vectors per row"
                    : $"is {message.CondCount}, level {shape.Level} reads {shape.MinConds} to {shape.MaxConds} condition vectors per row");
            if (message.NumIter.Count < shape.NumIterCount)
                Add("num_iter", $"has {message.NumIter.Count} entries, level {shape.Level} needs {shape.NumIterCount} (its own and every level's below)");
        }
        if (message.Level < 0) Add("level", $"is {message.Level}, must be 0 or more");
        if (message.PatchSize < 1) Add("patch_size", $"is {message.PatchSize}, must be 1 or more");
        if (message.StartStep < 0) Add("start_step", $"is {message.StartStep}, must be 0 or more");
        if (message.CondCount < 1) Add("cond_count", $"is {message.CondCount}, must be 1 or more");
        if (message.CondWidth < 1) Add("cond_width", $"is {message.CondWidth}, must be 1 or more");
        for (int i = 0; i < message.NumIter.Count; i++)
            if (message.NumIter[i] < 1) Add($"num_iter[{i}]", $"is {message.NumIter[i]}, must be 1 or more");
        if (message.Rows.Count == 0) Add("rows", "is empty: send at least one row");

        if (violations.Count == 0)
        {
            long condBytes = 4L * message.CondCount * message.CondWidth;
            int pixels = message.PatchSize * message.PatchSize;
            for (int r = 0; r < message.Rows.Count && violations.Count < MaxViolations; r++)
            {
                var row = message.Rows[r];
                string at = $"rows[{r}]";
                if (row.Conds.Length != condBytes)
                    Add($"{at}.conds", $"has {row.Conds.Length} bytes, expected cond_count × cond_width × 4 = {condBytes}");
                if (message.Guided && row.NullConds.Length != condBytes)
                    Add($"{at}.null_conds", $"has {row.NullConds.Length} bytes, expected cond_count × cond_width × 4 = {condBytes} (guided)");
                if (!message.Guided && row.NullConds.Length != 0)
                    Add($"{at}.null_conds", $"has {row.NullConds.Length} bytes, must be empty when guided is false");
                if (row.KnownPixels.Length != 0 && row.KnownPixels.Length != 3 * pixels)
                    Add($"{at}.known_pixels", $"has {row.KnownPixels.Length} bytes, expected 0 or 3 × patch_size² = {3 * pixels}");
                if (row.KnownMask.Length != 0 && row.KnownMask.Length != pixels)
                    Add($"{at}.known_mask", $"has {row.KnownMask.Length} bytes, expected 0 or patch_size² = {pixels}");
                else if (row.KnownMask.Length == pixels && row.KnownMask.Span.IndexOfAnyExcept((byte)0, (byte)1) is var bad and >= 0)
                    Add($"{at}.known_mask", $"byte {bad} is {row.KnownMask.Span[bad]}, must be 0 or 1");
                if (row.KnownMask.Length != 0 && row.KnownPixels.Length == 0)
                    Add($"{at}.known_pixels", "is empty but known_mask is set: send both or neither");
                if (row.KnownMask.Length == 0 && row.KnownPixels.Length != 0)
                    Add($"{at}.known_mask", "is empty but known_pixels is set: send both or neither");
                if (row.OriginalKnownMask.Length != 0 && (message.StartStep == 0 || row.OriginalKnownMask.Length != pixels))
                    Add($"{at}.original_known_mask", $"has {row.OriginalKnownMask.Length} bytes, expected patch_size² = {pixels} with start_step > 0, else none");
                if (!float.IsFinite(row.Cfg)) Add($"{at}.cfg", $"is {row.Cfg}, must be a finite number");
                if (!float.IsFinite(row.Temperature)) Add($"{at}.temperature", $"is {row.Temperature}, must be a finite number");
                if (!float.IsFinite(row.FilterThreshold)) Add($"{at}.filter_threshold", $"is {row.FilterThreshold}, must be a finite number");
                if (condBytes == row.Conds.Length && !AllFinite(row.Conds.Span)) Add($"{at}.conds", "holds a NaN or infinite value");
                if (message.Guided && condBytes == row.NullConds.Length && !AllFinite(row.NullConds.Span)) Add($"{at}.null_conds", "holds a NaN or infinite value");
            }
        }
        if (violations.Count > 0) throw InvalidArgument(violations);
    }

    /// <summary>Decodes a whole request (validated structurally first) into tensors on <paramref name="device"/>; the caller owns the result.</summary>
    public static PatchRequest ToPatchRequest(SamplePatchesRequest message, Device? device = null)
    {
        Validate(message);
        return ToPatchRequest(message, message.Rows, device);
    }

    /// <summary>
    /// Decodes <paramref name="rows"/> (already validated against <paramref name="header"/>, possibly gathered from several
    /// requests with the same header) into one request on <paramref name="device"/>. Synchronous tensor work; the caller owns the result.
    /// </summary>
    public static PatchRequest ToPatchRequest(SamplePatchesRequest header, IReadOnlyList<PatchRow> rows, Device? device = null)
    {
        device ??= CPU;
        int n = rows.Count, size = header.PatchSize, pixels = size * size, count = header.CondCount, width = header.CondWidth;
        var known = new byte[n * 3 * pixels];
        var mask = new bool[n * pixels];
        for (int r = 0; r < n; r++)
        {
            if (rows[r].KnownMask.Length == 0) continue;
            rows[r].KnownPixels.Span.CopyTo(known.AsSpan(r * 3 * pixels, 3 * pixels));
            var m = rows[r].KnownMask.Span;
            for (int i = 0; i < pixels; i++) mask[r * pixels + i] = m[i] != 0;
        }
        bool[]? original = null;
        if (header.StartStep > 0)
        {
            original = new bool[n * pixels];
            for (int r = 0; r < n; r++)
            {
                var m = rows[r].OriginalKnownMask.Span;
                for (int i = 0; i < m.Length && i < pixels; i++) original[r * pixels + i] = m[i] != 0;
            }
        }
        var conds = Conditions(rows, count, width, device, partner: false);
        var nullConds = header.Guided ? Conditions(rows, count, width, device, partner: true) : null;
        return new PatchRequest
        {
            Conds = conds,
            NullConds = nullConds,
            Size = size,
            KnownPixels = known,
            KnownMask = mask,
            Cfg = rows.Select(r => r.Cfg).ToArray(),
            Temperature = rows.Select(r => r.Temperature).ToArray(),
            FilterThreshold = rows.Select(r => r.FilterThreshold).ToArray(),
            NumIter = header.NumIter.ToArray(),
            Streams = rows.Select(r => new RowStream(r.Stream)).ToArray(),
            LinearCfg = header.LinearCfg,
            LinearTemperature = header.LinearTemperature,
            StartStep = header.StartStep,
            OriginalKnownMask = original,
        };
    }

    /// <summary>Encodes the completed patches (R × 3 × size × size bytes) as one entry per row.</summary>
    public static SamplePatchesResponse ToResponse(ReadOnlySpan<byte> patches, int rows, int patchSize)
    {
        int each = 3 * patchSize * patchSize;
        if (patches.Length != rows * each)
            throw new ArgumentException($"{patches.Length} bytes are not {rows} patches of {each} bytes", nameof(patches));
        var response = new SamplePatchesResponse();
        for (int r = 0; r < rows; r++) response.Patches.Add(ByteString.CopyFrom(patches.Slice(r * each, each)));
        return response;
    }

    /// <summary>
    /// Reads the completed patches of <paramref name="rows"/> rows back into R × 3 × size × size bytes. A reply of the
    /// wrong shape is the server's fault: it throws Internal naming the field.
    /// </summary>
    public static byte[] FromResponse(SamplePatchesResponse response, int rows, int patchSize)
    {
        int each = 3 * patchSize * patchSize;
        if (response.Patches.Count != rows)
            throw new RpcException(new Grpc.Core.Status(StatusCode.Internal, $"patches: the level answered {response.Patches.Count} patches for {rows} rows"));
        var bytes = new byte[rows * each];
        for (int r = 0; r < rows; r++)
        {
            var patch = response.Patches[r];
            if (patch.Length != each)
                throw new RpcException(new Grpc.Core.Status(StatusCode.Internal, $"patches[{r}]: has {patch.Length} bytes, expected 3 × patch_size² = {each}"));
            patch.Span.CopyTo(bytes.AsSpan(r * each, each));
        }
        return bytes;
    }

    /// <summary>The InvalidArgument error for <paramref name="violations"/>: the message names every field, the details carry a BadRequest.</summary>
    public static RpcException InvalidArgument(IReadOnlyList<BadRequest.Types.FieldViolation> violations)
    {
        var summary = string.Join("; ", violations.Take(4).Select(v => $"{v.Field} {v.Description}"));
        if (violations.Count > 4) summary += $"; and {violations.Count - 4} more";
        var badRequest = new BadRequest();
        badRequest.FieldViolations.AddRange(violations);
        var status = new Google.Rpc.Status
        {
            Code = (int)Code.InvalidArgument,
            Message = summary,
            Details = { Any.Pack(badRequest) },
        };
        return status.ToRpcException();
    }

    /// <summary>(R, K·C) row-major float32 on the CPU: row r holds its K condition vectors one after another.</summary>
    static float[] RowMajor(Tensor[] conds, int rows, int width)
    {
        using var scope = NewDisposeScope();
        foreach (var (c, k) in conds.Select((c, k) => (c, k)))
            if (c.dim() != 2 || c.shape[0] != rows || c.shape[1] != width)
                throw new ArgumentException($"condition {k} has shape ({string.Join(", ", c.shape)}), expected ({rows}, {width})", nameof(conds));
        // K × (R, C) -> (R, K, C)
        var stacked = stack(conds, 1).to_type(ScalarType.Float32).cpu().contiguous();
        return stacked.data<float>().ToArray();
    }

    /// <summary>K tensors (R, C) from every row's conds (or null_conds when <paramref name="partner"/>).</summary>
    static Tensor[] Conditions(IReadOnlyList<PatchRow> rows, int count, int width, Device device, bool partner)
    {
        int n = rows.Count;
        var perCond = new float[count][];
        for (int k = 0; k < count; k++) perCond[k] = new float[n * width];
        for (int r = 0; r < n; r++)
        {
            var bytes = (partner ? rows[r].NullConds : rows[r].Conds).Span;
            for (int k = 0; k < count; k++)
                ReadFloats(bytes.Slice(k * width * 4, width * 4), perCond[k].AsSpan(r * width, width));
        }
        var tensors = new Tensor[count];
        for (int k = 0; k < count; k++) tensors[k] = tensor(perCond[k], [n, width], device: device);
        return tensors;
    }

    static ByteString FloatBytes(ReadOnlySpan<float> values)
    {
        if (BitConverter.IsLittleEndian) return ByteString.CopyFrom(MemoryMarshal.AsBytes(values));
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return ByteString.CopyFrom(bytes);
    }

    static void ReadFloats(ReadOnlySpan<byte> bytes, Span<float> values)
    {
        if (BitConverter.IsLittleEndian) { MemoryMarshal.Cast<byte, float>(bytes).CopyTo(values); return; }
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4));
    }

    static bool AllFinite(ReadOnlySpan<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i += 4)
            if (!float.IsFinite(BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i)))) return false;
        return true;
    }
}
