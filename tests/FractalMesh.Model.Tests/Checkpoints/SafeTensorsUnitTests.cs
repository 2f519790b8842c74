using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using FractalMesh.Model.Checkpoints;
using TorchSharp;
using Xunit;

namespace FractalMesh.Model.Tests;

public class SafeTensorsUnitTests
{
    private static string ParityFile(string testCase, string name) =>
        Path.Combine(AppContext.BaseDirectory, "reference", "parity", testCase, name);

    [Fact]
    public void ExpectedTinyArFileReads()
    {
        var (tensors, metadata) = SafeTensors.Read(ParityFile("tiny_ar", "expected.safetensors"));
        try
        {
            var byName = tensors.ToDictionary(p => p.Key, p => p.Value);
            Assert.Equal("input.images_u8", tensors[0].Key);

            var images = byName["input.images_u8"];
            Assert.Equal(torch.ScalarType.Byte, images.dtype);
            Assert.Equal([3L, 3L, 16L, 16L], images.shape);

            var labels = byName["input.labels"];
            Assert.Equal(torch.ScalarType.Int64, labels.dtype);
            Assert.Equal([3L], labels.shape);
            Assert.All(labels.data<long>().ToArray(), label => Assert.InRange(label, 0, 9));

            Assert.Equal(torch.ScalarType.Float32, byName["level0.cond_in.0"].dtype);
            Assert.Equal([3L, 64L], byName["level0.cond_in.0"].shape);

            using var config = JsonDocument.Parse(metadata["config"]);
            Assert.Equal(10, config.RootElement.GetProperty("class_num").GetInt32());
            Assert.Equal("0.485,0.456,0.406", metadata["mean"]);
        }
        finally
        {
            foreach (var pair in tensors)
                pair.Value.Dispose();
        }
    }

    [Fact]
    public void RoundTripKeepsOrderDtypesValuesAndMetadata()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var source = new List<KeyValuePair<string, torch.Tensor>>
        {
            new("z.f32", torch.randn(2, 3)),
            new("a.f16", torch.randn(4).to_type(torch.ScalarType.Float16)),
            new("m.bf16", torch.randn(2, 2).to_type(torch.ScalarType.BFloat16)),
            new("f64", torch.randn(3, dtype: torch.ScalarType.Float64)),
            new("i64", torch.tensor(new long[] { -1, long.MaxValue, 7 })),
            new("i32", torch.tensor(new int[] { int.MinValue, 0, 5 })),
            new("i16", torch.tensor(new short[] { -300, 300 })),
            new("i8", torch.tensor(new sbyte[] { -128, 127 })),
            new("u8", torch.tensor(new byte[] { 0, 255, 3 }, [1, 3])),
            new("bool", torch.tensor(new[] { true, false, true })),
            new("scalar", torch.tensor(2.5f)),
            new("empty", torch.zeros(0, 5)),
            // A transposed view: stored as its row-major copy.
            new("transposed", torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3).t()),
        };
        var metadata = new Dictionary<string, string> { ["b"] = "2", ["a"] = "quote \" and ü", ["config"] = "{\"x\": [1, 2]}" };

        string path = dir.File("round.safetensors");
        SafeTensors.Write(path, source, metadata);
        var (read, readMetadata) = SafeTensors.Read(path);
        try
        {
            Assert.Equal(source.Select(p => p.Key), read.Select(p => p.Key));
            for (int i = 0; i < source.Count; i++)
            {
                var expected = source[i].Value.contiguous();
                var actual = read[i].Value;
                Assert.Equal(expected.dtype, actual.dtype);
                Assert.Equal(expected.shape, actual.shape);
                Assert.Equal(expected.bytes.ToArray(), actual.bytes.ToArray());
            }
            Assert.Equal([0f, 3, 1, 4, 2, 5], read.Single(p => p.Key == "transposed").Value.data<float>().ToArray());
            Assert.Equal(metadata, readMetadata);
        }
        finally
        {
            foreach (var pair in read)
                pair.Value.Dispose();
        }
    }

    [Fact]
    public void WritingIsDeterministicAndTheHeaderIsPaddedToEightBytes()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var tensors = new[]
        {
            KeyValuePair.Create("w", torch.randn(3, 5)),
            KeyValuePair.Create("b", torch.randn(5)),
        };
        // Metadata given in two insertion orders gives the same file.
        var metadata1 = new Dictionary<string, string> { ["k1"] = "v1", ["k2"] = "v2" };
        var metadata2 = new Dictionary<string, string> { ["k2"] = "v2", ["k1"] = "v1" };

        string first = dir.File("first.safetensors"), second = dir.File("second.safetensors");
        SafeTensors.Write(first, tensors, metadata1);
        SafeTensors.Write(second, tensors, metadata2);
        byte[] bytes = File.ReadAllBytes(first);
        Assert.Equal(bytes, File.ReadAllBytes(second));

        // Writing over an existing file gives the same bytes again, and leaves no temporary file.
        SafeTensors.Write(first, tensors, metadata1);
        Assert.Equal(bytes, File.ReadAllBytes(first));
        Assert.Equal(2, Directory.GetFiles(Path.GetDirectoryName(first)!).Length);

        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, headerLength % 8);
        Assert.Equal(8 + headerLength + (15 + 5) * 4, bytes.Length);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        using var json = JsonDocument.Parse(header);
        Assert.Equal(["__metadata__", "w", "b"], json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("F32", json.RootElement.GetProperty("b").GetProperty("dtype").GetString());
        Assert.Equal([60L, 80L], json.RootElement.GetProperty("b").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
    }

    [Fact]
    public void NoMetadataMeansNoMetadataObject()
    {
        using var dir = new TempDir();
        using var tensor = torch.ones(2);
        string path = dir.File("plain.safetensors");

        SafeTensors.Write(path, [KeyValuePair.Create("x", tensor)], null);
        var (read, metadata) = SafeTensors.Read(path);

        Assert.Empty(metadata);
        Assert.DoesNotContain("__metadata__", File.ReadAllText(path));
        Assert.Equal([1f, 1f], read[0].Value.data<float>().ToArray());
        read[0].Value.Dispose();
    }

    [Fact]
    public void ReadTensorsOutliveTheCallersDisposeScope()
    {
        List<KeyValuePair<string, torch.Tensor>> tensors;
        using (torch.NewDisposeScope())
        {
            (tensors, _) = SafeTensors.Read(ParityFile("tiny_mar", "expected.safetensors"));
        }
        try
        {
            Assert.All(tensors, pair => Assert.False(pair.Value.IsInvalid, pair.Key));
            Assert.Equal(2304, tensors[0].Value.numel());
        }
        finally
        {
            foreach (var pair in tensors)
                pair.Value.Dispose();
        }
    }

    [Fact]
    public void WriteRejectsDuplicateAndReservedNames()
    {
        using var dir = new TempDir();
        using var tensor = torch.ones(1);
        string path = dir.File("bad.safetensors");

        Assert.Throws<ArgumentException>(() => SafeTensors.Write(path, [KeyValuePair.Create("x", tensor), KeyValuePair.Create("x", tensor)], null));
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(path, [KeyValuePair.Create("__metadata__", tensor)], null));
        Assert.False(File.Exists(path));
    }

    public static TheoryData<string, byte[]> CorruptFiles()
    {
        static byte[] WithHeader(string json, int dataBytes)
        {
            byte[] header = Encoding.UTF8.GetBytes(json);
            var file = new byte[8 + header.Length + dataBytes];
            BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
            header.CopyTo(file, 8);
            return file;
        }

        return new TheoryData<string, byte[]>
        {
            { "empty", [] },
            { "garbage", Encoding.ASCII.GetBytes("definitely not a safetensors file") },
            { "header too long", [.. BitConverter.GetBytes(1_000_000UL), .. "{}  "u8.ToArray()] },
            { "not json", WithHeader("{nope", 0) },
            { "not an object", WithHeader("[1, 2]", 0) },
            { "unknown dtype", WithHeader("""{"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}""", 1) },
            { "size mismatch", WithHeader("""{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4) },
            { "past the end", WithHeader("""{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4) },
            { "negative dim", WithHeader("""{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4) },
            { "metadata not strings", WithHeader("""{"__metadata__":{"a":1}}""", 0) },
        };
    }

    [Theory]
    [MemberData(nameof(CorruptFiles))]
    public void CorruptFilesAreInvalidData(string name, byte[] content)
    {
        using var dir = new TempDir();
        string path = dir.File(name.Replace(' ', '_') + ".safetensors");
        File.WriteAllBytes(path, content);

        var error = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void TruncatedParityFileIsInvalidData()
    {
        using var dir = new TempDir();
        byte[] whole = File.ReadAllBytes(ParityFile("tiny_ar", "expected.safetensors"));
        string path = dir.File("truncated.safetensors");
        File.WriteAllBytes(path, whole[..(whole.Length - 100)]);

        Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
    }

    private sealed class TempDir : IDisposable
    {
        private readonly string _path = Directory.CreateTempSubdirectory("fractalmesh-safetensors-").FullName;

        public string File(string name) => Path.Combine(_path, name);

        public void Dispose() => Directory.Delete(_path, recursive: true);
    }
}
