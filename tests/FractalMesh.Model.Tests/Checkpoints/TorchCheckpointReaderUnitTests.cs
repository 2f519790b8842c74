using System.IO.Compression;
using System.Text;
using FractalMesh.Model.Checkpoints;
using TorchSharp;
using Xunit;

namespace FractalMesh.Model.Tests;

public class TorchCheckpointReaderUnitTests
{
    private static string ParityFile(string testCase, string name) =>
        Path.Combine(AppContext.BaseDirectory, "reference", "parity", testCase, name);

    // ---- The official checkpoints shipped in reference/parity ----

    [Fact]
    public void TinyMarCheckpointLoadsModelEpochAndArgs()
    {
        using var file = TorchCheckpointReader.ReadCheckpoint(ParityFile("tiny_mar", "checkpoint-last.pth"));

        Assert.Equal(3, file.Epoch);
        Assert.Equal(["args", "epoch", "model", "optimizer", "scaler"], file.TopLevelKeys);
        Assert.Equal("tiny_mar", file.Args["model"]);
        Assert.Equal(16L, file.Args["img_size"]);
        Assert.Equal(5L, file.Args["num_conds"]);
        Assert.Equal(false, file.Args["guiding_pixel"]);
        Assert.Equal(10L, file.Args["class_num"]);

        // Ordered by name: PyBridge does not keep the OrderedDict's order.
        Assert.Equal(82, file.Model.Count);
        Assert.Equal(file.Model.Select(p => p.Key).Order(StringComparer.Ordinal), file.Model.Select(p => p.Key));
        Assert.Equal("class_emb.weight", file.Model[0].Key);

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
        using var file = TorchCheckpointReader.ReadCheckpoint(ParityFile("tiny_ar", "checkpoint-last.pth"));

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
            file = TorchCheckpointReader.ReadCheckpoint(ParityFile("tiny_mar", "checkpoint-last.pth"));
        }
        var first = file.Model[0].Value; // class_emb.weight
        Assert.False(first.IsInvalid);
        Assert.Equal(640, first.numel());

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

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void EmptyFileIsInvalidData()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.pth");
        File.WriteAllBytes(path, []);

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
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

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void LegacyPickleFileIsInvalidDataWithAHint()
    {
        using var dir = new TempDir();
        string path = dir.File("legacy.pth");
        File.WriteAllBytes(path, Convert.FromBase64String(NoModelPickle));

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains("legacy", error.Message);
    }

    [Fact]
    public void ZipWithoutDataPklIsInvalidData()
    {
        using var dir = new TempDir();
        string path = dir.File("other.zip");
        WriteZip(path, new() { ["archive/readme.txt"] = "hello"u8.ToArray() });

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains("data.pkl", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void CheckpointWithoutModelNamesThePathAndTheKeys()
    {
        using var dir = new TempDir();
        string path = dir.File("no_model.pth");
        WriteCheckpointZip(path, NoModelPickle, withStorages: false);

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
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

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void BigEndianCheckpointIsRefused()
    {
        using var dir = new TempDir();
        string path = dir.File("big.pth");
        WriteCheckpointZip(path, Protocol2Pickle, withStorages: true, byteOrder: "big");

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains("little-endian", error.Message);
    }

    // ---- Checkpoints made from the fixtures below ----

    [Theory]
    [InlineData(2)]
    [InlineData(5)]
    public void FixtureCheckpointGivesModelEpochArgsAndKeys(int protocol)
    {
        using var dir = new TempDir();
        string path = dir.File("fixture.pth");
        WriteCheckpointZip(path, protocol == 2 ? Protocol2Pickle : Protocol5Pickle, withStorages: true);

        using var file = TorchCheckpointReader.ReadCheckpoint(path);

        Assert.Equal(7, file.Epoch);
        Assert.Equal(["args", "epoch", "extras", "model", "optimizer", "scaler"], file.TopLevelKeys);
        Assert.Equal(["empty", "half", "long", "mask", "scalar", "w"], file.Model.Select(p => p.Key));
        Assert.Equal(0.5, file.Args["lr"]);
        Assert.Equal("tiny", file.Args["name"]);
        Assert.Equal(-5L, file.Args["neg"]);
        Assert.Equal(true, file.Args["yes"]);
        Assert.Null(file.Args["none"]);
        AssertModelValues(file.Model.ToDictionary(p => p.Key, p => p.Value));
    }

    [Fact]
    public void TopLevelStateDictIsTheModel()
    {
        using var dir = new TempDir();
        string path = dir.File("state_dict.pth");
        WriteCheckpointZip(path, StateDictOnlyPickle, withStorages: true);

        using var file = TorchCheckpointReader.ReadCheckpoint(path);

        Assert.Null(file.Epoch);
        Assert.Empty(file.Args);
        Assert.Equal(6, file.Model.Count);
        Assert.Equal(file.Model.Select(p => p.Key), file.TopLevelKeys);
        AssertModelValues(file.Model.ToDictionary(p => p.Key, p => p.Value));
    }

    [Fact]
    public void StridedViewIsInvalidData()
    {
        // PyBridge 1.4.4 reads a storage into a tensor made with the view's strides, which TorchSharp 0.107 refuses for
        // a non-contiguous view (here a transpose); state dicts of parameters hold no such views.
        using var dir = new TempDir();
        string path = dir.File("strided.pth");
        WriteCheckpointZip(path, StridedViewPickle, withStorages: true);

        var error = Assert.Throws<InvalidDataException>(() => TorchCheckpointReader.ReadCheckpoint(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("non-contiguous", error.Message);
    }

    // ---- Helpers ----

    private static void AssertModelValues(IReadOnlyDictionary<string, torch.Tensor> model)
    {
        Assert.Equal([0f, 1, 2, 3, 4, 5], model["w"].data<float>().ToArray());
        Assert.Equal([2L, 3L], model["w"].shape);
        Assert.Empty(model["scalar"].shape);
        Assert.Equal(0f, model["scalar"].item<float>());
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
    // model['scalar'] = Tensor(f32, 0, (), ())            # 0-d: 0 (PyBridge reads no view at an offset into a shared storage)
    // strided = collections.OrderedDict(w=model['w'], w_t=Tensor(f32, 0, (3, 2), (1, 3)))
    // model['half'] = Tensor(f16, 0, (3,), (1,))         # torch.nn.Parameter here: PyBridge refuses it ("contains the entire model")
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
    //     # No frozenset or torch.device (NEWOBJ_EX with keywords) here: Razorvine.Pickle reads neither.
    //     'extras': {'set': {1, 2}, 'neg_big': -2**80},
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
    // print('strided =', base64.b64encode(dump({'model': strided}, 2)).decode())

    private const string Protocol2Pickle =
        "gAJ9cQAoWAUAAABtb2RlbHEBY2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnECKVJxAyhYAQAAAHdxBGN0b3JjaC5fdXRpbHMK" +
        "X3JlYnVpbGRfdGVuc29yX3YyCnEFKChYBwAAAHN0b3JhZ2VxBmN0b3JjaApGbG9hdFN0b3JhZ2UKcQdYAQAAADBxCFgDAAAA" +
        "Y3B1cQlLBnRxClFLAEsCSwOGcQtLA0sBhnEMiWgCKVJxDXRxDlJxD1gGAAAAc2NhbGFycRBoBSgoaAZoB2gIaAlLBnRxEVFL" +
        "ACkpiWgCKVJxEnRxE1JxFFgEAAAAaGFsZnEVaAUoKGgGY3RvcmNoCkhhbGZTdG9yYWdlCnEWWAEAAAAxcRdoCUsDdHEYUUsA" +
        "SwOFcRlLAYVxGoloAilScRt0cRxScR1YBAAAAGxvbmdxHmgFKChoBmN0b3JjaApMb25nU3RvcmFnZQpxH1gBAAAAMnEgaAlL" +
        "AnRxIVFLAEsChXEiaBqJaAIpUnEjdHEkUnElWAQAAABtYXNrcSZoBSgoaAZjdG9yY2gKQm9vbFN0b3JhZ2UKcSdYAQAAADNx" +
        "KGgJSwN0cSlRSwBoGWgaiWgCKVJxKnRxK1JxLFgFAAAAZW1wdHlxLWgFKChoBmgHaAhoCUsGdHEuUUsASwBLBIZxL0sESwGG" +
        "cTCJaAIpUnExdHEyUnEzdVgJAAAAb3B0aW1pemVycTR9cTUoWAUAAABzdGF0ZXE2fXE3SwB9cTgoWAQAAABzdGVwcTloBSgo" +
        "aAZoB2gIaAlLBnRxOlFLACkpiWgCKVJxO3RxPFJxPVgHAAAAZXhwX2F2Z3E+aAUoKGgGaAdoCGgJSwZ0cT9RSwBLBoVxQGga" +
        "iWgCKVJxQXRxQlJxQ3VzWAwAAABwYXJhbV9ncm91cHNxRF1xRX1xRihYAgAAAGxycUdHP7mZmZmZmZpYBgAAAHBhcmFtc3FI" +
        "XXFJSwBhdWF1WAUAAABlcG9jaHFKSwdYBgAAAHNjYWxlcnFLfXFMKFgFAAAAc2NhbGVxTUdA8AAAAAAAAFgPAAAAX2dyb3d0" +
        "aF90cmFja2VycU5LAHVYBgAAAGV4dHJhc3FPfXFQKFgDAAAAc2V0cVFjX19idWlsdGluX18Kc2V0CnFSXXFTKEsBSwJlhXFU" +
        "UnFVWAcAAABuZWdfYmlncVaKCwAAAAAAAAAAAAD/dVgEAAAAYXJnc3FXY2FyZ3BhcnNlCk5hbWVzcGFjZQpxWCmBcVl9cVoo" +
        "aEdHP+AAAAAAAABYBAAAAG5hbWVxW1gEAAAAdGlueXFcWAUAAABmbGFnc3FdXXFeKEsBSwJlWAMAAABiaWdxX4oJAAAAAAAA" +
        "AABAWAMAAABuZWdxYEr7////WAQAAABwYWlycWFLAVgBAAAAYXFihnFjWAQAAABub25lcWROWAMAAAByYXdxZWNfY29kZWNz" +
        "CmVuY29kZQpxZlgCAAAAAAFxZ1gGAAAAbGF0aW4xcWiGcWlScWpYAwAAAHllc3FriHVidS4=";

    private const string Protocol5Pickle =
        "gAWVXQMAAAAAAAB9lCiMBW1vZGVslIwLY29sbGVjdGlvbnOUjAtPcmRlcmVkRGljdJSTlClSlCiMAXeUjAx0b3JjaC5fdXRp" +
        "bHOUjBJfcmVidWlsZF90ZW5zb3JfdjKUk5QoKIwHc3RvcmFnZZSMBXRvcmNolIwMRmxvYXRTdG9yYWdllJOUjAEwlIwDY3B1" +
        "lEsGdJRRSwBLAksDhpRLA0sBhpSJaAQpUpR0lFKUjAZzY2FsYXKUaAkoKGgKaA1oDmgPSwZ0lFFLACkpiWgEKVKUdJRSlIwE" +
        "aGFsZpRoCSgoaApoC4wLSGFsZlN0b3JhZ2WUk5SMATGUaA9LA3SUUUsASwOFlEsBhZSJaAQpUpR0lFKUjARsb25nlGgJKCho" +
        "CmgLjAtMb25nU3RvcmFnZZSTlIwBMpRoD0sCdJRRSwBLAoWUaCGJaAQpUpR0lFKUjARtYXNrlGgJKChoCmgLjAtCb29sU3Rv" +
        "cmFnZZSTlIwBM5RoD0sDdJRRSwBoIGghiWgEKVKUdJRSlIwFZW1wdHmUaAkoKGgKaA1oDmgPSwZ0lFFLAEsASwSGlEsESwGG" +
        "lIloBClSlHSUUpR1jAlvcHRpbWl6ZXKUfZQojAVzdGF0ZZR9lEsAfZQojARzdGVwlGgJKChoCmgNaA5oD0sGdJRRSwApKYlo" +
        "BClSlHSUUpSMB2V4cF9hdmeUaAkoKGgKaA1oDmgPSwZ0lFFLAEsGhZRoIYloBClSlHSUUpR1c4wMcGFyYW1fZ3JvdXBzlF2U" +
        "fZQojAJscpRHP7mZmZmZmZqMBnBhcmFtc5RdlEsAYXVhdYwFZXBvY2iUSweMBnNjYWxlcpR9lCiMBXNjYWxllEdA8AAAAAAA" +
        "AIwPX2dyb3d0aF90cmFja2VylEsAdYwGZXh0cmFzlH2UKIwDc2V0lI+UKEsBSwKQjAduZWdfYmlnlIoLAAAAAAAAAAAAAP91" +
        "jARhcmdzlIwIYXJncGFyc2WUjAlOYW1lc3BhY2WUk5QpgZR9lChoUEc/4AAAAAAAAIwEbmFtZZSMBHRpbnmUjAVmbGFnc5Rd" +
        "lChLAUsCZYwDYmlnlIoJAAAAAAAAAABAjANuZWeUSvv///+MBHBhaXKUSwGMAWGUhpSMBG5vbmWUTowDcmF3lEMCAAGUjAN5" +
        "ZXOUiHVidS4=";

    private const string StateDictOnlyPickle =
        "gAJjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgBAAAAd3ECY3RvcmNoLl91dGlscwpfcmVidWlsZF90ZW5zb3Jf" +
        "djIKcQMoKFgHAAAAc3RvcmFnZXEEY3RvcmNoCkZsb2F0U3RvcmFnZQpxBVgBAAAAMHEGWAMAAABjcHVxB0sGdHEIUUsASwJL" +
        "A4ZxCUsDSwGGcQqJaAApUnELdHEMUnENWAYAAABzY2FsYXJxDmgDKChoBGgFaAZoB0sGdHEPUUsAKSmJaAApUnEQdHERUnES" +
        "WAQAAABoYWxmcRNoAygoaARjdG9yY2gKSGFsZlN0b3JhZ2UKcRRYAQAAADFxFWgHSwN0cRZRSwBLA4VxF0sBhXEYiWgAKVJx" +
        "GXRxGlJxG1gEAAAAbG9uZ3EcaAMoKGgEY3RvcmNoCkxvbmdTdG9yYWdlCnEdWAEAAAAycR5oB0sCdHEfUUsASwKFcSBoGIlo" +
        "AClScSF0cSJScSNYBAAAAG1hc2txJGgDKChoBGN0b3JjaApCb29sU3RvcmFnZQpxJVgBAAAAM3EmaAdLA3RxJ1FLAGgXaBiJ" +
        "aAApUnEodHEpUnEqWAUAAABlbXB0eXEraAMoKGgEaAVoBmgHSwZ0cSxRSwBLAEsEhnEtSwRLAYZxLoloAClScS90cTBScTF1" +
        "Lg==";

    private const string NoModelPickle =
        "gAJ9cQAoWAUAAABlcG9jaHEBSwFYBwAAAHdlaWdodHNxAksDdS4=";

    private const string StridedViewPickle =
        "gAJ9cQBYBQAAAG1vZGVscQFjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQIpUnEDKFgBAAAAd3EEY3RvcmNoLl91dGlscwpf" +
        "cmVidWlsZF90ZW5zb3JfdjIKcQUoKFgHAAAAc3RvcmFnZXEGY3RvcmNoCkZsb2F0U3RvcmFnZQpxB1gBAAAAMHEIWAMAAABj" +
        "cHVxCUsGdHEKUUsASwJLA4ZxC0sDSwGGcQyJaAIpUnENdHEOUnEPWAMAAAB3X3RxEGgFKChoBmgHaAhoCUsGdHERUUsASwNL" +
        "AoZxEksBSwOGcROJaAIpUnEUdHEVUnEWdXMu";
}
