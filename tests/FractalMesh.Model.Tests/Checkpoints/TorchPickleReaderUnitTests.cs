using System.IO.Compression;
using System.Numerics;
using System.Text;
using FractalMesh.Model.Checkpoints;
using TorchSharp;
using Xunit;

namespace FractalMesh.Model.Tests;

public class TorchPickleReaderUnitTests
{
    private static string ParityFile(string testCase, string name) =>
        Path.Combine(AppContext.BaseDirectory, "reference", "parity", testCase, name);

    // ---- The official checkpoints shipped in reference/parity ----

    [Fact]
    public void TinyMarCheckpointLoadsModelEpochAndArgs()
    {
        using var file = TorchPickleReader.ReadCheckpoint(ParityFile("tiny_mar", "checkpoint-last.pth"));

        Assert.Equal(3, file.Epoch);
        Assert.Equal(["model", "optimizer", "epoch", "scaler", "args"], file.TopLevelKeys);
        Assert.Equal("tiny_mar", file.Args["model"]);
        Assert.Equal(16L, file.Args["img_size"]);
        Assert.Equal(5L, file.Args["num_conds"]);
        Assert.Equal(false, file.Args["guiding_pixel"]);
        Assert.Equal(10L, file.Args["class_num"]);

        Assert.Equal(82, file.Model.Count);
        Assert.Equal("fake_latent", file.Model[0].Key);
        Assert.Equal("class_emb.weight", file.Model[1].Key);
        Assert.Equal("next_fractal.next_fractal.b_mlm.bias", file.Model[^1].Key);

        var byName = file.Model.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal([1L, 64L], byName["fake_latent"].shape);
        Assert.Equal([10L, 64L], byName["class_emb.weight"].shape);
        Assert.Equal([1L, 21L, 64L], byName["generator.pos_embed_learned"].shape);
        Assert.Equal([192L, 64L], byName["generator.blocks.0.attn.qkv.weight"].shape);
        Assert.Equal([32L, 3L], byName["next_fractal.generator.patch_emb.weight"].shape);
        Assert.Equal([256L, 16L], byName["next_fractal.next_fractal.r_codebook.weight"].shape);
        Assert.Equal([1L, 256L], byName["next_fractal.next_fractal.b_mlm.bias"].shape);

        // The first values of fake_latent as Python's struct module decodes them from data/0.
        var fakeLatent = byName["fake_latent"].data<float>().ToArray();
        Assert.Equal(0.007980703376233578f, fakeLatent[0]);
        Assert.Equal(-0.010797103866934776f, fakeLatent[1]);
        Assert.Equal(-0.07025701552629471f, fakeLatent[2]);

        foreach (var (name, tensor) in file.Model)
        {
            Assert.Equal(torch.ScalarType.Float32, tensor.dtype);
            Assert.True(tensor.is_contiguous(), name);
            Assert.True(tensor.isfinite().all().item<bool>(), $"{name} has a non-finite value");
            Assert.True(tensor.abs().sum().item<float>() > 0, $"{name} is all zeros");
        }
    }

    [Fact]
    public void TinyArCheckpointLoads()
    {
        using var file = TorchPickleReader.ReadCheckpoint(ParityFile("tiny_ar", "checkpoint-last.pth"));

        Assert.Equal(3, file.Epoch);
        Assert.Equal("tiny_ar", file.Args["model"]);
        Assert.Equal(65, file.Model.Count);
        Assert.Equal([1L, 17L, 64L], file.Model.Single(p => p.Key == "generator.pos_embed_learned").Value.shape);
        Assert.Equal(0.03160468488931656f, file.Model.Single(p => p.Key == "class_emb.weight").Value[0, 0].item<float>());
    }

    [Fact]
    public void CheckpointTensorsOutliveTheCallersDisposeScopeAndDieWithTheFile()
    {
        TorchCheckpointFile file;
        using (torch.NewDisposeScope())
        {
            file = TorchPickleReader.ReadCheckpoint(ParityFile("tiny_mar", "checkpoint-last.pth"));
        }
        var first = file.Model[0].Value;
        Assert.False(first.IsInvalid);
        Assert.Equal(64, first.numel());

        file.Dispose();
        Assert.True(first.IsInvalid);
        Assert.Throws<ObjectDisposedException>(() => file.Model);
        file.Dispose(); // twice is harmless
    }

    // ---- Corrupt and foreign files ----

    [Fact]
    public void GarbageFileIsInvalidData()
    {
        using var dir = new TempDir();
        string path = dir.File("garbage.pth");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("this is not a checkpoint at all, just some text"));

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void EmptyFileIsInvalidData()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.pth");
        File.WriteAllBytes(path, []);

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains("empty", error.Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.99)]
    public void TruncatedCheckpointIsInvalidData(double keep)
    {
        using var dir = new TempDir();
        byte[] whole = File.ReadAllBytes(ParityFile("tiny_mar", "checkpoint-last.pth"));
        string path = dir.File("truncated.pth");
        File.WriteAllBytes(path, whole[..(int)(whole.Length * keep)]);

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void LegacyPickleFileIsInvalidDataWithAHint()
    {
        using var dir = new TempDir();
        string path = dir.File("legacy.pth");
        File.WriteAllBytes(path, Convert.FromBase64String(NoModelPickle));

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains("legacy", error.Message);
    }

    [Fact]
    public void ZipWithoutDataPklIsInvalidData()
    {
        using var dir = new TempDir();
        string path = dir.File("other.zip");
        WriteZip(path, new() { ["archive/readme.txt"] = "hello"u8.ToArray() });

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains("data.pkl", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void CheckpointWithoutModelNamesThePathAndTheKeys()
    {
        using var dir = new TempDir();
        string path = dir.File("no_model.pth");
        WriteCheckpointZip(path, NoModelPickle, withStorages: false);

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("model", error.Message);
        Assert.Contains("epoch, weights", error.Message);
    }

    [Fact]
    public void MissingStorageEntryIsInvalidData()
    {
        using var dir = new TempDir();
        string path = dir.File("no_storages.pth");
        WriteCheckpointZip(path, Protocol2Pickle, withStorages: false);

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains("archive/data/0", error.Message);
    }

    [Fact]
    public void BigEndianCheckpointIsRefused()
    {
        using var dir = new TempDir();
        string path = dir.File("big.pth");
        WriteCheckpointZip(path, Protocol2Pickle, withStorages: true, byteOrder: "big");

        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadCheckpoint(path));
        Assert.Contains("little-endian", error.Message);
    }

    // ---- Checkpoints made from the fixtures below ----

    [Fact]
    public void FixtureCheckpointGivesModelEpochArgsAndKeys()
    {
        using var dir = new TempDir();
        string path = dir.File("fixture.pth");
        WriteCheckpointZip(path, Protocol2Pickle, withStorages: true);

        using var file = TorchPickleReader.ReadCheckpoint(path);

        Assert.Equal(7, file.Epoch);
        Assert.Equal(["model", "optimizer", "epoch", "scaler", "extras", "args"], file.TopLevelKeys);
        Assert.Equal(["w", "w_t", "tail", "scalar", "half", "long", "mask", "empty"], file.Model.Select(p => p.Key));
        Assert.Equal(0.5, file.Args["lr"]);
        Assert.Equal("tiny", file.Args["name"]);
        AssertModelValues(file.Model.ToDictionary(p => p.Key, p => p.Value));
    }

    [Fact]
    public void TopLevelStateDictIsTheModel()
    {
        using var dir = new TempDir();
        string path = dir.File("state_dict.pth");
        WriteCheckpointZip(path, StateDictOnlyPickle, withStorages: true);

        using var file = TorchPickleReader.ReadCheckpoint(path);

        Assert.Null(file.Epoch);
        Assert.Empty(file.Args);
        Assert.Equal(8, file.Model.Count);
        Assert.Equal(file.Model.Select(p => p.Key), file.TopLevelKeys);
        AssertModelValues(file.Model.ToDictionary(p => p.Key, p => p.Value));
    }

    // ---- The pickle machine ----

    [Theory]
    [InlineData(2)]
    [InlineData(5)]
    public void PickleMachineBuildsTheCheckpointStructure(int protocol)
    {
        var root = ReadFixture(protocol == 2 ? Protocol2Pickle : Protocol5Pickle, StorageLoader);

        var top = Assert.IsType<PickleDict>(root);
        Assert.Equal(["model", "optimizer", "epoch", "scaler", "extras", "args"], top.Keys);
        Assert.Equal(7L, top["epoch"]);

        var model = Assert.IsType<PickleDict>(top["model"]);
        Assert.True(model.IsOrderedDict);
        var w = Assert.IsType<PickledTensor>(model["w"]);
        Assert.Equal([2L, 3L], w.Shape);
        Assert.Equal([3L, 1L], w.Strides);
        Assert.Equal("FloatStorage", w.Storage.TypeName);
        Assert.Equal(torch.ScalarType.Float32, w.Storage.DType);
        Assert.Equal("0", w.Storage.Key);
        Assert.Equal("cpu", w.Storage.Location);
        Assert.Equal(6, w.Storage.ElementCount);
        // Views of one storage share one storage object, as in PyTorch.
        Assert.Same(w.Storage, Assert.IsType<PickledTensor>(model["w_t"]).Storage);
        Assert.IsType<PickledTensor>(model["half"]); // _rebuild_parameter unwraps to the tensor

        // Optimizer state: integer keys, tensors left lazy.
        var optimizer = Assert.IsType<PickleDict>(top["optimizer"]);
        var state = Assert.IsType<PickleDict>(Assert.IsType<PickleDict>(optimizer["state"])[0L]);
        Assert.Equal([6L], Assert.IsType<PickledTensor>(state["exp_avg"]).Shape);
        var groups = Assert.IsType<List<object?>>(optimizer["param_groups"]);
        var group = Assert.IsType<PickleDict>(Assert.Single(groups));
        Assert.Equal(0.1, group["lr"]);
        Assert.Equal([0L], Assert.IsType<List<object?>>(group["params"]));

        var scaler = Assert.IsType<PickleDict>(top["scaler"]);
        Assert.Equal(65536.0, scaler["scale"]);
        Assert.Equal(0L, scaler["_growth_tracker"]);

        var extras = Assert.IsType<PickleDict>(top["extras"]);
        Assert.Equal(-BigInteger.Pow(2, 80), extras["neg_big"]);
        // Protocol 4+ has set opcodes and NEWOBJ_EX; protocol 2 spells both as calls, which give the same values.
        Assert.True(Assert.IsType<HashSet<object?>>(extras["set"]).SetEquals([1L, 2L]));
        Assert.True(Assert.IsType<HashSet<object?>>(extras["frozen"]).SetEquals([3L]));
        var device = Assert.IsType<PickleObject>(extras["device"]);
        Assert.Equal("torch.device", device.FullName);
        Assert.Equal(new object?[] { "cuda" }, device.Args);
        Assert.Equal(0L, device.Kwargs!["index"]);

        var args = Assert.IsType<PickleNamespace>(top["args"]).Fields;
        Assert.Equal(["lr", "name", "flags", "big", "neg", "pair", "none", "raw", "yes"], args.Keys);
        Assert.Equal(0.5, args["lr"]);
        Assert.Equal("tiny", args["name"]);
        Assert.Equal([1L, 2L], Assert.IsType<List<object?>>(args["flags"]));
        Assert.Equal(BigInteger.Pow(2, 70), args["big"]);
        Assert.Equal(-5L, args["neg"]);
        Assert.Equal([1L, "a"], Assert.IsType<object?[]>(args["pair"]));
        Assert.Null(args["none"]);
        Assert.Equal(true, args["yes"]);
        Assert.Equal(new byte[] { 0, 1 }, Assert.IsType<byte[]>(args["raw"]));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(5)]
    public void PickledTensorsMaterialiseViewsOffsetsAndDtypes(int protocol)
    {
        var model = (PickleDict)((PickleDict)ReadFixture(protocol == 2 ? Protocol2Pickle : Protocol5Pickle, StorageLoader)!)["model"]!;
        var tensors = model.ToDictionary(p => (string)p.Key!, p => ((PickledTensor)p.Value!).ToTensor());
        try
        {
            AssertModelValues(tensors);
        }
        finally
        {
            foreach (var tensor in tensors.Values)
                tensor.Dispose();
        }
    }

    [Fact]
    public void PickleWithoutLoaderCanBeInspectedButNotMaterialised()
    {
        var root = (PickleDict)ReadFixture(Protocol5Pickle, null)!;
        var w = (PickledTensor)((PickleDict)root["model"]!)["w"]!;

        Assert.Equal([2L, 3L], w.Shape);
        Assert.Throws<InvalidOperationException>(() => w.ToTensor());
    }

    [Fact]
    public void ShortStorageIsInvalidData()
    {
        var root = (PickleDict)ReadFixture(Protocol2Pickle, _ => new byte[8])!;
        var w = (PickledTensor)((PickleDict)root["model"]!)["w"]!;

        Assert.Throws<InvalidDataException>(() => w.ToTensor());
    }

    [Fact]
    public void PickleMachineHandlesTheLessCommonOpcodes()
    {
        var pickle = new PickleBytes()
            .Op(0x80, 4)                                  // PROTO 4
            .Op('(')                                      // MARK
            .Op(0x8b).Int32(2).Op(0x00, 0x01)             // LONG4 → 256
            .Op('B').Int32(2).Op(9, 8)                    // BINBYTES
            .Op('T').Int32(2).Text("hi")                  // BINSTRING
            .Op('U', 1).Text("x")                         // SHORT_BINSTRING
            .Op(0x8d).Int64(1).Text("y")                  // BINUNICODE8
            .Op('K', 9).Op('2').Op('0')                   // BININT1 9, DUP, POP
            .Op('r').Int32(5)                             // LONG_BINPUT 5
            .Op('j').Int32(5)                             // LONG_BINGET 5 → 9
            .Op('I').Text("-12\n")                        // INT
            .Op('I').Text("01\n")                         // INT 01 is True in protocol 0
            .Op('L').Text("123456789012345678901234L\n")  // LONG
            .Op('F').Text("2.5\n")                        // FLOAT
            .Op('J').Int32(-3)                            // BININT
            .Op('M').Op(0x34, 0x12)                       // BININT2 0x1234
            .Op('(').Op('K', 1).Op('1')                   // MARK, BININT1, POP_MARK: nothing left
            .Op('(').Op('K', 1).Op('K', 2).Op('l')        // LIST [1, 2]
            .Op('K', 3).Op('a')                           // APPEND → [1, 2, 3]
            .Op('(').Op(0x8c, 1).Text("a").Op('K', 1).Op('d') // DICT {'a': 1}
            .Op('p').Text("3\n").Op('g').Text("3\n")      // PUT 3, GET 3: the same dict again
            .Op('N').Op(0x89).Op(0x87)                    // NONE, NEWFALSE, ... TUPLE3 with the dict
            .Op('t')                                      // TUPLE of everything since the first MARK
            .Op('.')
            .ToArray();

        var tuple = Assert.IsType<object?[]>(TorchPickleReader.ReadPickle(new MemoryStream(pickle), null));

        Assert.Equal(256L, tuple[0]);
        Assert.Equal(new byte[] { 9, 8 }, Assert.IsType<byte[]>(tuple[1]));
        Assert.Equal("hi", tuple[2]);
        Assert.Equal("x", tuple[3]);
        Assert.Equal("y", tuple[4]);
        Assert.Equal(9L, tuple[5]);
        Assert.Equal(9L, tuple[6]);
        Assert.Equal(-12L, tuple[7]);
        Assert.Equal(true, tuple[8]);
        Assert.Equal(BigInteger.Parse("123456789012345678901234"), tuple[9]);
        Assert.Equal(2.5, tuple[10]);
        Assert.Equal(-3L, tuple[11]);
        Assert.Equal(0x1234L, tuple[12]);
        Assert.Equal([1L, 2L, 3L], Assert.IsType<List<object?>>(tuple[13]));
        var dict = Assert.IsType<PickleDict>(tuple[14]);
        Assert.Equal(1L, dict["a"]);
        var last = Assert.IsType<object?[]>(tuple[15]);
        Assert.Same(dict, last[0]);
        Assert.Null(last[1]);
        Assert.Equal(false, last[2]);
        Assert.Equal(16, tuple.Length);
    }

    [Theory]
    [InlineData(new byte[] { 0x80, 2, (byte)'K' }, "truncated")]                  // BININT1 without its byte
    [InlineData(new byte[] { 0x80, 2, (byte)'K', 1 }, "STOP")]                    // no STOP
    [InlineData(new byte[] { 0x80, 2, (byte)'.' }, "empty")]                      // STOP on an empty stack
    [InlineData(new byte[] { 0x80, 2, (byte)'h', 7, (byte)'.' }, "memo")]         // BINGET of nothing
    [InlineData(new byte[] { 0x80, 2, (byte)'t', (byte)'.' }, "MARK")]            // TUPLE without MARK
    [InlineData(new byte[] { 0x80, 2, 0xff, (byte)'.' }, "0xff")]                 // unknown opcode
    [InlineData(new byte[] { 0x80, 9, (byte)'N', (byte)'.' }, "protocol 9")]      // a future protocol
    [InlineData(new byte[] { 0x80, 2, (byte)'N', (byte)')', (byte)'R', (byte)'.' }, "callable")] // calling None
    public void CorruptPicklesAreInvalidData(byte[] pickle, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => TorchPickleReader.ReadPickle(new MemoryStream(pickle), null));
        Assert.Contains(expected, error.Message);
    }

    // ---- Helpers ----

    private static void AssertModelValues(IReadOnlyDictionary<string, torch.Tensor> model)
    {
        Assert.Equal([0f, 1, 2, 3, 4, 5], model["w"].data<float>().ToArray());
        Assert.Equal([2L, 3L], model["w"].shape);
        // The transposed view becomes a row-major copy.
        Assert.True(model["w_t"].is_contiguous());
        Assert.Equal([3L, 2L], model["w_t"].shape);
        Assert.Equal([0f, 3, 1, 4, 2, 5], model["w_t"].data<float>().ToArray());
        Assert.Equal([2f, 4], model["tail"].data<float>().ToArray());
        Assert.Empty(model["scalar"].shape);
        Assert.Equal(5f, model["scalar"].item<float>());
        Assert.Equal(torch.ScalarType.Float16, model["half"].dtype);
        Assert.Equal([1.5f, -2f, 0.25f], model["half"].to_type(torch.ScalarType.Float32).data<float>().ToArray());
        Assert.Equal(torch.ScalarType.Int64, model["long"].dtype);
        Assert.Equal([-7L, 1L << 40], model["long"].data<long>().ToArray());
        Assert.Equal(torch.ScalarType.Bool, model["mask"].dtype);
        Assert.Equal([true, false, true], model["mask"].data<bool>().ToArray());
        Assert.Equal([0L, 4L], model["empty"].shape);
    }

    /// <summary>The fixtures' storages: key → little-endian bytes.</summary>
    private static readonly Dictionary<string, byte[]> Storages = new()
    {
        ["0"] = [.. new float[] { 0, 1, 2, 3, 4, 5 }.SelectMany(v => BitConverter.GetBytes(v))],
        ["1"] = [.. new[] { (Half)1.5f, (Half)(-2f), (Half)0.25f }.SelectMany(v => BitConverter.GetBytes(v))],
        ["2"] = [.. new long[] { -7, 1L << 40 }.SelectMany(v => BitConverter.GetBytes(v))],
        ["3"] = [1, 0, 1],
    };

    private static ReadOnlySpan<byte> StorageLoader(string key) => Storages[key];

    private static object? ReadFixture(string base64, Func<string, ReadOnlySpan<byte>>? loader) =>
        TorchPickleReader.ReadPickle(new MemoryStream(Convert.FromBase64String(base64)), loader);

    /// <summary>Lays a pickle and the fixture storages out as torch.save does.</summary>
    private static void WriteCheckpointZip(string path, string pickleBase64, bool withStorages, string? byteOrder = "little")
    {
        var entries = new Dictionary<string, byte[]>
        {
            ["archive/data.pkl"] = Convert.FromBase64String(pickleBase64),
            ["archive/version"] = "3\n"u8.ToArray(),
        };
        if (byteOrder is not null)
            entries["archive/byteorder"] = Encoding.ASCII.GetBytes(byteOrder);
        if (withStorages)
            foreach (var (key, bytes) in Storages)
                entries[$"archive/data/{key}"] = bytes;
        WriteZip(path, entries);
    }

    private static void WriteZip(string path, Dictionary<string, byte[]> entries)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            // torch.save stores entries uncompressed.
            using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
            stream.Write(bytes);
        }
    }

    /// <summary>Builds a pickle byte by byte.</summary>
    private sealed class PickleBytes
    {
        private readonly List<byte> _bytes = [];

        public PickleBytes Op(char opcode, params byte[] operands) => Op((byte)opcode, operands);

        public PickleBytes Op(byte opcode, params byte[] operands)
        {
            _bytes.Add(opcode);
            _bytes.AddRange(operands);
            return this;
        }

        public PickleBytes Int32(int value)
        {
            _bytes.AddRange(BitConverter.GetBytes(value));
            return this;
        }

        public PickleBytes Int64(long value)
        {
            _bytes.AddRange(BitConverter.GetBytes(value));
            return this;
        }

        public PickleBytes Text(string text)
        {
            _bytes.AddRange(Encoding.UTF8.GetBytes(text));
            return this;
        }

        public byte[] ToArray() => [.. _bytes];
    }

    private sealed class TempDir : IDisposable
    {
        private readonly string _path = Directory.CreateTempSubdirectory("fractalmesh-pickle-").FullName;

        public string File(string name) => Path.Combine(_path, name);

        public void Dispose() => Directory.Delete(_path, recursive: true);
    }

    // ---- Fixtures ----
    //
    // Pickles laid out like torch.save's data.pkl, made without torch by this Python script
    // (it prints base64; the storages are rebuilt in Storages above):
    //
    // # Builds pickles shaped like torch.save's data.pkl without torch: fake torch globals.
    // import sys, types, pickle, collections, argparse, base64, struct
    // torch = types.ModuleType('torch'); utils = types.ModuleType('torch._utils')
    // torch._utils = utils
    // sys.modules['torch'] = torch; sys.modules['torch._utils'] = utils
    // def _rebuild_tensor_v2(*a): pass
    // def _rebuild_parameter(*a): pass
    // for f in (_rebuild_tensor_v2, _rebuild_parameter):
    //     f.__module__ = 'torch._utils'; setattr(utils, f.__name__, f)
    // for n in ('FloatStorage', 'HalfStorage', 'LongStorage', 'BoolStorage'):
    //     c = type(n, (), {}); c.__module__ = 'torch'; setattr(torch, n, c)
    // class device:
    //     def __init__(self, kind, index=None): self.kind, self.index = kind, index
    //     def __getnewargs_ex__(self): return ((self.kind,), {'index': self.index})
    // device.__module__ = 'torch'; torch.device = device
    // class Storage:
    //     def __init__(self, typ, key, numel): self.typ, self.key, self.numel = typ, key, numel
    // class Tensor:
    //     def __init__(self, storage, offset, size, stride): self.a = (storage, offset, size, stride)
    //     def __reduce_ex__(self, proto):
    //         return (_rebuild_tensor_v2, self.a + (False, collections.OrderedDict()))
    // class Parameter:
    //     def __init__(self, t): self.t = t
    //     def __reduce_ex__(self, proto): return (_rebuild_parameter, (self.t, True, collections.OrderedDict()))
    // class P(pickle.Pickler):
    //     def persistent_id(self, obj):
    //         if isinstance(obj, Storage):
    //             return ('storage', obj.typ, obj.key, 'cpu', obj.numel)
    //         return None
    // f32 = Storage(torch.FloatStorage, '0', 6)    # 0..5
    // f16 = Storage(torch.HalfStorage, '1', 3)     # 1.5, -2, 0.25
    // i64 = Storage(torch.LongStorage, '2', 2)     # -7, 2**40
    // b8 = Storage(torch.BoolStorage, '3', 3)      # True, False, True
    // model = collections.OrderedDict()
    // model['w'] = Tensor(f32, 0, (2, 3), (3, 1))
    // model['w_t'] = Tensor(f32, 0, (3, 2), (1, 3))       # transposed view of the same storage
    // model['tail'] = Tensor(f32, 2, (2,), (2,))          # offset and stride: [2, 4]
    // model['scalar'] = Tensor(f32, 5, (), ())            # 0-d: 5
    // model['half'] = Parameter(Tensor(f16, 0, (3,), (1,)))
    // model['long'] = Tensor(i64, 0, (2,), (1,))
    // model['mask'] = Tensor(b8, 0, (3,), (1,))
    // model['empty'] = Tensor(f32, 0, (0, 4), (4, 1))
    // args = argparse.Namespace(lr=0.5, name='tiny', flags=[1, 2], big=2**70, neg=-5, pair=(1, 'a'),
    //                           none=None, raw=b'\x00\x01', yes=True)
    // top = {
    //     'model': model,
    //     'optimizer': {'state': {0: {'step': Tensor(f32, 0, (), ()), 'exp_avg': Tensor(f32, 0, (6,), (1,))}},
    //                   'param_groups': [{'lr': 0.1, 'params': [0]}]},
    //     'epoch': 7,
    //     'scaler': {'scale': 65536.0, '_growth_tracker': 0},
    //     'extras': {'set': {1, 2}, 'frozen': frozenset({3}), 'device': device('cuda', 0), 'neg_big': -2**80},
    //     'args': args,
    // }
    // storages = {
    //     '0': struct.pack('<6f', 0, 1, 2, 3, 4, 5),
    //     '1': struct.pack('<3e', 1.5, -2, 0.25),
    //     '2': struct.pack('<2q', -7, 2**40),
    //     '3': bytes([1, 0, 1]),
    // }
    // def dump(obj, proto):
    //     import io
    //     b = io.BytesIO(); P(b, protocol=proto).dump(obj); return b.getvalue()
    // for proto in (2, 5):
    //     print(f'proto{proto} =', base64.b64encode(dump(top, proto)).decode())
    // print('state_dict_only =', base64.b64encode(dump(model, 2)).decode())
    // print('no_model =', base64.b64encode(dump({'epoch': 1, 'weights': 3}, 2)).decode())
    // for k, v in storages.items():
    //     print(f'storage {k} =', base64.b64encode(v).decode())

    private const string Protocol2Pickle =
        "gAJ9cQAoWAUAAABtb2RlbHEBY2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnECKVJxAyhYAQAAAHdxBGN0b3JjaC5fdXRpbHMK" +
        "X3JlYnVpbGRfdGVuc29yX3YyCnEFKChYBwAAAHN0b3JhZ2VxBmN0b3JjaApGbG9hdFN0b3JhZ2UKcQdYAQAAADBxCFgDAAAA" +
        "Y3B1cQlLBnRxClFLAEsCSwOGcQtLA0sBhnEMiWgCKVJxDXRxDlJxD1gDAAAAd190cRBoBSgoaAZoB2gIaAlLBnRxEVFLAEsD" +
        "SwKGcRJLAUsDhnETiWgCKVJxFHRxFVJxFlgEAAAAdGFpbHEXaAUoKGgGaAdoCGgJSwZ0cRhRSwJLAoVxGWgZiWgCKVJxGnRx" +
        "G1JxHFgGAAAAc2NhbGFycR1oBSgoaAZoB2gIaAlLBnRxHlFLBSkpiWgCKVJxH3RxIFJxIVgEAAAAaGFsZnEiY3RvcmNoLl91" +
        "dGlscwpfcmVidWlsZF9wYXJhbWV0ZXIKcSNoBSgoaAZjdG9yY2gKSGFsZlN0b3JhZ2UKcSRYAQAAADFxJWgJSwN0cSZRSwBL" +
        "A4VxJ0sBhXEoiWgCKVJxKXRxKlJxK4hoAilScSyHcS1ScS5YBAAAAGxvbmdxL2gFKChoBmN0b3JjaApMb25nU3RvcmFnZQpx" +
        "MFgBAAAAMnExaAlLAnRxMlFLAGgZaCiJaAIpUnEzdHE0UnE1WAQAAABtYXNrcTZoBSgoaAZjdG9yY2gKQm9vbFN0b3JhZ2UK" +
        "cTdYAQAAADNxOGgJSwN0cTlRSwBoJ2goiWgCKVJxOnRxO1JxPFgFAAAAZW1wdHlxPWgFKChoBmgHaAhoCUsGdHE+UUsASwBL" +
        "BIZxP0sESwGGcUCJaAIpUnFBdHFCUnFDdVgJAAAAb3B0aW1pemVycUR9cUUoWAUAAABzdGF0ZXFGfXFHSwB9cUgoWAQAAABz" +
        "dGVwcUloBSgoaAZoB2gIaAlLBnRxSlFLACkpiWgCKVJxS3RxTFJxTVgHAAAAZXhwX2F2Z3FOaAUoKGgGaAdoCGgJSwZ0cU9R" +
        "SwBLBoVxUGgoiWgCKVJxUXRxUlJxU3VzWAwAAABwYXJhbV9ncm91cHNxVF1xVX1xVihYAgAAAGxycVdHP7mZmZmZmZpYBgAA" +
        "AHBhcmFtc3FYXXFZSwBhdWF1WAUAAABlcG9jaHFaSwdYBgAAAHNjYWxlcnFbfXFcKFgFAAAAc2NhbGVxXUdA8AAAAAAAAFgP" +
        "AAAAX2dyb3d0aF90cmFja2VycV5LAHVYBgAAAGV4dHJhc3FffXFgKFgDAAAAc2V0cWFjX19idWlsdGluX18Kc2V0CnFiXXFj" +
        "KEsBSwJlhXFkUnFlWAYAAABmcm96ZW5xZmNfX2J1aWx0aW5fXwpmcm96ZW5zZXQKcWddcWhLA2GFcWlScWpYBgAAAGRldmlj" +
        "ZXFrY2Z1bmN0b29scwpwYXJ0aWFsCnFsY19fYnVpbHRpbl9fCmdldGF0dHIKcW1jX19idWlsdGluX18Kb2JqZWN0CnFuWAcA" +
        "AABfX25ld19fcW+GcXBScXGFcXJScXMoaHFjdG9yY2gKZGV2aWNlCnF0WAQAAABjdWRhcXWGcXZ9cXdYBQAAAGluZGV4cXhL" +
        "AHNOdHF5YilScXp9cXsoWAQAAABraW5kcXxodWh4SwB1YlgHAAAAbmVnX2JpZ3F9igsAAAAAAAAAAAAA/3VYBAAAAGFyZ3Nx" +
        "fmNhcmdwYXJzZQpOYW1lc3BhY2UKcX8pgXGAfXGBKGhXRz/gAAAAAAAAWAQAAABuYW1lcYJYBAAAAHRpbnlxg1gFAAAAZmxh" +
        "Z3NxhF1xhShLAUsCZVgDAAAAYmlncYaKCQAAAAAAAAAAQFgDAAAAbmVncYdK+////1gEAAAAcGFpcnGISwFYAQAAAGFxiYZx" +
        "ilgEAAAAbm9uZXGLTlgDAAAAcmF3cYxjX2NvZGVjcwplbmNvZGUKcY1YAgAAAAABcY5YBgAAAGxhdGluMXGPhnGQUnGRWAMA" +
        "AAB5ZXNxkoh1YnUu";

    private const string Protocol5Pickle =
        "gAWVHgQAAAAAAAB9lCiMBW1vZGVslIwLY29sbGVjdGlvbnOUjAtPcmRlcmVkRGljdJSTlClSlCiMAXeUjAx0b3JjaC5fdXRp" +
        "bHOUjBJfcmVidWlsZF90ZW5zb3JfdjKUk5QoKIwHc3RvcmFnZZSMBXRvcmNolIwMRmxvYXRTdG9yYWdllJOUjAEwlIwDY3B1" +
        "lEsGdJRRSwBLAksDhpRLA0sBhpSJaAQpUpR0lFKUjAN3X3SUaAkoKGgKaA1oDmgPSwZ0lFFLAEsDSwKGlEsBSwOGlIloBClS" +
        "lHSUUpSMBHRhaWyUaAkoKGgKaA1oDmgPSwZ0lFFLAksChZRoH4loBClSlHSUUpSMBnNjYWxhcpRoCSgoaApoDWgOaA9LBnSU" +
        "UUsFKSmJaAQpUpR0lFKUjARoYWxmlGgHjBJfcmVidWlsZF9wYXJhbWV0ZXKUk5RoCSgoaApoC4wLSGFsZlN0b3JhZ2WUk5SM" +
        "ATGUaA9LA3SUUUsASwOFlEsBhZSJaAQpUpR0lFKUiGgEKVKUh5RSlIwEbG9uZ5RoCSgoaApoC4wLTG9uZ1N0b3JhZ2WUk5SM" +
        "ATKUaA9LAnSUUUsAaB9oMIloBClSlHSUUpSMBG1hc2uUaAkoKGgKaAuMC0Jvb2xTdG9yYWdllJOUjAEzlGgPSwN0lFFLAGgv" +
        "aDCJaAQpUpR0lFKUjAVlbXB0eZRoCSgoaApoDWgOaA9LBnSUUUsASwBLBIaUSwRLAYaUiWgEKVKUdJRSlHWMCW9wdGltaXpl" +
        "cpR9lCiMBXN0YXRllH2USwB9lCiMBHN0ZXCUaAkoKGgKaA1oDmgPSwZ0lFFLACkpiWgEKVKUdJRSlIwHZXhwX2F2Z5RoCSgo" +
        "aApoDWgOaA9LBnSUUUsASwaFlGgwiWgEKVKUdJRSlHVzjAxwYXJhbV9ncm91cHOUXZR9lCiMAmxylEc/uZmZmZmZmowGcGFy" +
        "YW1zlF2USwBhdWF1jAVlcG9jaJRLB4wGc2NhbGVylH2UKIwFc2NhbGWUR0DwAAAAAAAAjA9fZ3Jvd3RoX3RyYWNrZXKUSwB1" +
        "jAZleHRyYXOUfZQojANzZXSUj5QoSwFLApCMBmZyb3plbpQoSwORlIwGZGV2aWNllGgLaG+TlIwEY3VkYZSFlH2UjAVpbmRl" +
        "eJRLAHOSlH2UKIwEa2luZJRocWh0SwB1YowHbmVnX2JpZ5SKCwAAAAAAAAAAAAD/dYwEYXJnc5SMCGFyZ3BhcnNllIwJTmFt" +
        "ZXNwYWNllJOUKYGUfZQoaGFHP+AAAAAAAACMBG5hbWWUjAR0aW55lIwFZmxhZ3OUXZQoSwFLAmWMA2JpZ5SKCQAAAAAAAAAA" +
        "QIwDbmVnlEr7////jARwYWlylEsBjAFhlIaUjARub25llE6MA3Jhd5RDAgABlIwDeWVzlIh1YnUu";

    private const string StateDictOnlyPickle =
        "gAJjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgBAAAAd3ECY3RvcmNoLl91dGlscwpfcmVidWlsZF90ZW5zb3Jf" +
        "djIKcQMoKFgHAAAAc3RvcmFnZXEEY3RvcmNoCkZsb2F0U3RvcmFnZQpxBVgBAAAAMHEGWAMAAABjcHVxB0sGdHEIUUsASwJL" +
        "A4ZxCUsDSwGGcQqJaAApUnELdHEMUnENWAMAAAB3X3RxDmgDKChoBGgFaAZoB0sGdHEPUUsASwNLAoZxEEsBSwOGcRGJaAAp" +
        "UnESdHETUnEUWAQAAAB0YWlscRVoAygoaARoBWgGaAdLBnRxFlFLAksChXEXaBeJaAApUnEYdHEZUnEaWAYAAABzY2FsYXJx" +
        "G2gDKChoBGgFaAZoB0sGdHEcUUsFKSmJaAApUnEddHEeUnEfWAQAAABoYWxmcSBjdG9yY2guX3V0aWxzCl9yZWJ1aWxkX3Bh" +
        "cmFtZXRlcgpxIWgDKChoBGN0b3JjaApIYWxmU3RvcmFnZQpxIlgBAAAAMXEjaAdLA3RxJFFLAEsDhXElSwGFcSaJaAApUnEn" +
        "dHEoUnEpiGgAKVJxKodxK1JxLFgEAAAAbG9uZ3EtaAMoKGgEY3RvcmNoCkxvbmdTdG9yYWdlCnEuWAEAAAAycS9oB0sCdHEw" +
        "UUsAaBdoJoloAClScTF0cTJScTNYBAAAAG1hc2txNGgDKChoBGN0b3JjaApCb29sU3RvcmFnZQpxNVgBAAAAM3E2aAdLA3Rx" +
        "N1FLAGglaCaJaAApUnE4dHE5UnE6WAUAAABlbXB0eXE7aAMoKGgEaAVoBmgHSwZ0cTxRSwBLAEsEhnE9SwRLAYZxPoloAClS" +
        "cT90cUBScUF1Lg==";

    private const string NoModelPickle =
        "gAJ9cQAoWAUAAABlcG9jaHEBSwFYBwAAAHdlaWdodHNxAksDdS4=";
}
