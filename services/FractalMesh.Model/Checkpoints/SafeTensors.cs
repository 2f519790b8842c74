using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;

namespace FractalMesh.Model.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}</c>
/// padded with spaces to a multiple of 8 bytes, then the raw little-endian tensor data.
/// </summary>
public static class SafeTensors
{
    private const string MetadataKey = "__metadata__";

    // A header bigger than this is not a tensor index but a corrupt length field; the reference
    // implementation uses the same bound.
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>The <c>__metadata__</c> of a safetensors file (empty when absent), reading its header only: no tensor is loaded.</summary>
    public static Dictionary<string, string> ReadMetadata(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return ReadHeader(file, path).Metadata;
    }

    /// <summary>The entries and metadata of the header at the start of <paramref name="file"/>, and where the data begins.</summary>
    static (List<Entry> Entries, Dictionary<string, string> Metadata, long DataStart) ReadHeader(FileStream file, string path)
    {
        try
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            file.ReadExactly(lengthBytes);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (headerLength > MaxHeaderBytes || (long)headerLength > file.Length - 8)
                throw new InvalidDataException($"the header length {headerLength} does not fit a file of {file.Length} bytes");
            var header = new byte[(int)headerLength];
            file.ReadExactly(header);
            long dataStart = 8 + (long)headerLength;
            var (entries, metadata) = ParseHeader(header, file.Length - dataStart);
            return (entries, metadata, dataStart);
        }
        catch (Exception e) when (e is JsonException or EndOfStreamException or InvalidDataException)
        {
            throw new InvalidDataException($"'{path}' is not a valid safetensors file: {e.Message}", e);
        }
    }

    /// <summary>
    /// Reads every tensor of a safetensors file, in header order, plus its <c>__metadata__</c>
    /// (empty when absent). The tensors are CPU tensors owned by the caller: they are detached from
    /// any active dispose scope. A malformed file gives an <see cref="InvalidDataException"/>.
    /// </summary>
    public static (List<KeyValuePair<string, torch.Tensor>> Tensors, Dictionary<string, string> Metadata) Read(string path) => Read(path, null);

    /// <summary>As <see cref="Read(string)"/>, materializing only the tensors whose name <paramref name="include"/> accepts.</summary>
    public static (List<KeyValuePair<string, torch.Tensor>> Tensors, Dictionary<string, string> Metadata) Read(string path, Func<string, bool>? include)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        TensorBytes.EnsureLittleEndian();

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var (entries, metadata, dataStart) = ReadHeader(file, path);

        // Tensors are created in a private scope and only detached once all of them were read, so
        // a failure half way disposes the ones already made.
        using var scope = torch.NewDisposeScope();
        var tensors = new List<KeyValuePair<string, torch.Tensor>>(entries.Count);
        foreach (var entry in entries)
        {
            if (include is not null && !include(entry.Name)) continue;
            var tensor = torch.empty(entry.Shape, entry.DType);
            if (entry.End > entry.Begin)
            {
                file.Seek(dataStart + entry.Begin, SeekOrigin.Begin);
                try
                {
                    TensorBytes.ForEachChunk(tensor, (_, chunk) => file.ReadExactly(chunk));
                }
                catch (EndOfStreamException e)
                {
                    throw new InvalidDataException($"'{path}' is truncated: tensor '{entry.Name}' needs bytes up to {dataStart + entry.End}", e);
                }
            }
            tensors.Add(new(entry.Name, tensor));
        }
        foreach (var pair in tensors)
            pair.Value.DetachFromDisposeScope();
        return (tensors, metadata);
    }

    /// <summary>
    /// Writes the tensors, in the given order, and the metadata (keys sorted ordinally, omitted
    /// when null or empty) to <paramref name="path"/>. The output is deterministic: the same
    /// tensors and metadata always give the same bytes. The file is written next to the target and
    /// then moved over it, so a reader never sees a half-written file.
    /// </summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        TensorBytes.EnsureLittleEndian();

        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in list)
        {
            if (string.IsNullOrEmpty(name) || name == MetadataKey)
                throw new ArgumentException($"'{name}' is not a valid safetensors tensor name", nameof(tensors));
            if (!names.Add(name))
                throw new ArgumentException($"the tensor name '{name}' appears twice", nameof(tensors));
            ArgumentNullException.ThrowIfNull(tensor, $"tensor '{name}'");
            _ = DTypeCode(tensor.dtype, name);
        }

        byte[] header = BuildHeader(list, metadata);

        string temporary = path + ".tmp";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                Span<byte> lengthBytes = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)header.Length);
                file.Write(lengthBytes);
                file.Write(header);
                foreach (var (_, tensor) in list)
                {
                    using var scope = torch.NewDisposeScope();
                    // A contiguous CPU copy (or the tensor itself when it already is one) gives
                    // the row-major bytes the format stores.
                    var flat = tensor.detach().cpu().contiguous();
                    if (flat.numel() > 0)
                        TensorBytes.ForEachChunk(flat, (_, chunk) => file.Write(chunk));
                }
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
            throw;
        }
    }

    private static byte[] BuildHeader(List<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        // Relaxed escaping writes `"` as \" (as Python's json does) instead of \u0022; the output
        // stays valid JSON and is easier to read in a hex dump.
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    ArgumentNullException.ThrowIfNull(value, $"metadata '{key}'");
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }

            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                long bytes = checked(tensor.numel() * TensorBytes.ElementSize(tensor.dtype));
                json.WriteStartObject(name);
                json.WriteString("dtype", DTypeCode(tensor.dtype, name));
                json.WriteStartArray("shape");
                foreach (long dim in tensor.shape)
                    json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }

        // Padding the header to a multiple of 8 keeps the data aligned for memory-mapping readers.
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        while (buffer.Length < padded)
            buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(byte[] header, long dataLength)
    {
        using var document = JsonDocument.Parse(header);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException("the header is not a JSON object");

        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in document.RootElement.EnumerateObject())
        {
            if (!seen.Add(property.Name))
                throw new InvalidDataException($"the header names '{property.Name}' twice");
            if (property.Name == MetadataKey)
            {
                if (property.Value.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException("__metadata__ is not an object");
                foreach (var item in property.Value.EnumerateObject())
                {
                    if (item.Value.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"metadata '{item.Name}' is not a string");
                    metadata[item.Name] = item.Value.GetString()!;
                }
                continue;
            }
            entries.Add(ParseEntry(property.Name, property.Value, dataLength));
        }
        return (entries, metadata);
    }

    private static Entry ParseEntry(string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"tensor '{name}' is not described by an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"tensor '{name}' has no dtype");
        var dtype = ParseDType(dtypeElement.GetString()!, name);
        long[] shape = ReadLongArray(value, "shape", name);
        long[] offsets = ReadLongArray(value, "data_offsets", name);
        if (offsets.Length != 2)
            throw new InvalidDataException($"tensor '{name}' has {offsets.Length} data_offsets, not 2");

        long expected = TensorBytes.ElementSize(dtype);
        foreach (long dim in shape)
            expected = checked(expected * dim);
        long begin = offsets[0], end = offsets[1];
        if (begin > end || end > dataLength)
            throw new InvalidDataException($"tensor '{name}' has data_offsets [{begin}, {end}] outside the {dataLength} data bytes");
        if (end - begin != expected)
            throw new InvalidDataException($"tensor '{name}' spans {end - begin} bytes but its dtype and shape need {expected}");
        return new Entry(name, dtype, shape, begin, end);
    }

    private static long[] ReadLongArray(JsonElement value, string property, string name)
    {
        if (!value.TryGetProperty(property, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"tensor '{name}' has no {property} array");
        var result = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long number) || number < 0)
                throw new InvalidDataException($"tensor '{name}' has a {property} entry that is not a non-negative integer");
            result[i++] = number;
        }
        return result;
    }

    private static torch.ScalarType ParseDType(string code, string name) => code switch
    {
        "F32" => torch.ScalarType.Float32,
        "F16" => torch.ScalarType.Float16,
        "BF16" => torch.ScalarType.BFloat16,
        "F64" => torch.ScalarType.Float64,
        "I64" => torch.ScalarType.Int64,
        "I32" => torch.ScalarType.Int32,
        "I16" => torch.ScalarType.Int16,
        "I8" => torch.ScalarType.Int8,
        "U8" => torch.ScalarType.Byte,
        "BOOL" => torch.ScalarType.Bool,
        _ => throw new InvalidDataException($"tensor '{name}' has the unsupported dtype '{code}'"),
    };

    private static string DTypeCode(torch.ScalarType dtype, string name) => dtype switch
    {
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Float64 => "F64",
        torch.ScalarType.Int64 => "I64",
        torch.ScalarType.Int32 => "I32",
        torch.ScalarType.Int16 => "I16",
        torch.ScalarType.Int8 => "I8",
        torch.ScalarType.Byte => "U8",
        torch.ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"tensor '{name}' has the dtype {dtype}, which safetensors files here do not store"),
    };

    private sealed record Entry(string Name, torch.ScalarType DType, long[] Shape, long Begin, long End);
}

/// <summary>Raw-byte access to CPU tensors, shared by the checkpoint readers and writers.</summary>
internal static class TensorBytes
{
    /// <summary>Receives one piece of a tensor's bytes, at <paramref name="byteOffset"/> from its start.</summary>
    internal delegate void ChunkAction(long byteOffset, Span<byte> chunk);

    // A Span covers at most int.MaxValue bytes, so bigger tensors are visited in pieces.
    private const long ChunkBytes = 1L << 30;

    internal static void EnsureLittleEndian()
    {
        // Both formats store little-endian data, and the bytes are copied into tensors unchanged.
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("checkpoint files can only be read and written on a little-endian machine");
    }

    internal static int ElementSize(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Byte or torch.ScalarType.Int8 or torch.ScalarType.Bool => 1,
        torch.ScalarType.Int16 or torch.ScalarType.Float16 or torch.ScalarType.BFloat16 => 2,
        torch.ScalarType.Int32 or torch.ScalarType.Float32 => 4,
        torch.ScalarType.Int64 or torch.ScalarType.Float64 or torch.ScalarType.ComplexFloat32 => 8,
        torch.ScalarType.ComplexFloat64 => 16,
        _ => throw new NotSupportedException($"the dtype {dtype} has no known element size"),
    };

    /// <summary>
    /// Calls <paramref name="action"/> with the bytes of a contiguous CPU tensor, in order, in
    /// spans of at most 1 GiB. The spans point into the tensor's memory, so writing them fills it.
    /// </summary>
    internal static void ForEachChunk(torch.Tensor tensor, ChunkAction action)
    {
        if (!tensor.is_contiguous() || tensor.device_type != DeviceType.CPU)
            throw new InvalidOperationException("raw bytes need a contiguous CPU tensor");
        long count = tensor.numel();
        if (count == 0)
            return;
        int elementSize = ElementSize(tensor.dtype);
        if (count * elementSize <= ChunkBytes)
        {
            action(0, tensor.bytes);
            return;
        }

        using var flat = tensor.reshape(-1);
        long perChunk = ChunkBytes / elementSize;
        for (long start = 0; start < count; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, count - start));
            action(start * elementSize, part.bytes);
        }
    }
}
