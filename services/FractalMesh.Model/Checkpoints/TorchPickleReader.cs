using System.Buffers.Binary;
using System.Collections;
using System.Globalization;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using TorchSharp;

namespace FractalMesh.Model.Checkpoints;

/// <summary>
/// The parts of an official PyTorch checkpoint (<c>torch.save({"model": ..., "epoch": ...,
/// "args": ..., ...})</c>) that FractalMesh uses. It owns the <see cref="Model"/> tensors:
/// disposing it disposes them.
/// </summary>
public sealed class TorchCheckpointFile : IDisposable
{
    private readonly List<KeyValuePair<string, torch.Tensor>> _model;
    private bool _disposed;

    internal TorchCheckpointFile(
        List<KeyValuePair<string, torch.Tensor>> model,
        long? epoch,
        IReadOnlyDictionary<string, object?> args,
        IReadOnlyCollection<string> topLevelKeys)
    {
        _model = model;
        Epoch = epoch;
        Args = args;
        TopLevelKeys = topLevelKeys;
    }

    /// <summary>The <c>"model"</c> state dict in file order, as contiguous CPU tensors.</summary>
    public IReadOnlyList<KeyValuePair<string, torch.Tensor>> Model
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _model;
        }
    }

    /// <summary>The <c>"epoch"</c> entry, or null when the file has none.</summary>
    public long? Epoch { get; }

    /// <summary>
    /// The fields of the <c>argparse.Namespace</c> stored under <c>"args"</c> (empty if absent).
    /// Values are pickle values: <see cref="string"/>, <see cref="long"/>, <see cref="double"/>,
    /// <see cref="bool"/>, null, <c>List&lt;object?&gt;</c> for lists, <c>object?[]</c> for tuples, and so on
    /// (see <see cref="TorchPickleReader.ReadPickle"/>).
    /// </summary>
    public IReadOnlyDictionary<string, object?> Args { get; }

    /// <summary>The keys of the top-level dict, in file order.</summary>
    public IReadOnlyCollection<string> TopLevelKeys { get; }

    /// <summary>Disposes the <see cref="Model"/> tensors.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var pair in _model)
            pair.Value.Dispose();
    }
}

/// <summary>
/// Reads the zip format written by <c>torch.save</c>: <c>&lt;prefix&gt;/data.pkl</c> (a pickle whose
/// persistent ids name storages), <c>&lt;prefix&gt;/data/&lt;key&gt;</c> (the raw little-endian storages),
/// <c>&lt;prefix&gt;/version</c> and maybe <c>&lt;prefix&gt;/byteorder</c>. It runs its own pickle machine,
/// which builds plain values and never executes code: globals it does not know become
/// <see cref="PickleObject"/> placeholders.
/// </summary>
public static class TorchPickleReader
{
    /// <summary>
    /// Reads a checkpoint and turns its <c>"model"</c> state dict into TorchSharp CPU tensors,
    /// which the returned object owns. A file whose top level is itself a state dict (string keys,
    /// tensor values) is accepted too. Other tensors (optimizer state) are never materialised.
    /// A file that is not a readable zip-format checkpoint, or has no <c>"model"</c>, gives an
    /// <see cref="InvalidDataException"/> that names it.
    /// </summary>
    public static TorchCheckpointFile ReadCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        TensorBytes.EnsureLittleEndian();

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a zip-format PyTorch checkpoint: {DescribeNonZip(file)}", e);
        }

        using (zip)
        {
            try
            {
                return ReadFromZip(zip);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
            {
                throw new InvalidDataException($"Cannot read the PyTorch checkpoint '{path}': {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Runs the pickle machine on <paramref name="pickle"/> and returns the unpickled value.
    /// Python values map to: None → null, bool → <see cref="bool"/>, int → <see cref="long"/>
    /// (<see cref="BigInteger"/> beyond 64 bits), float → <see cref="double"/>, str → <see cref="string"/>,
    /// bytes/bytearray → <c>byte[]</c>, tuple → <c>object?[]</c>, list → <c>List&lt;object?&gt;</c>,
    /// dict/OrderedDict → <see cref="PickleDict"/>, set/frozenset → <c>HashSet&lt;object?&gt;</c>,
    /// <c>argparse.Namespace</c> → <see cref="PickleNamespace"/>, a bare global → <see cref="PickleGlobal"/>,
    /// any other object → <see cref="PickleObject"/>. Tensors become lazy <see cref="PickledTensor"/>
    /// descriptors over <see cref="PickledStorage"/>s; <see cref="PickledTensor.ToTensor"/> reads
    /// their bytes through <paramref name="storageLoader"/> (key → the whole storage), which must stay
    /// usable until then. With no loader the structure can still be inspected.
    /// </summary>
    public static object? ReadPickle(Stream pickle, Func<string, ReadOnlySpan<byte>>? storageLoader)
    {
        ArgumentNullException.ThrowIfNull(pickle);
        using var buffer = new MemoryStream();
        pickle.CopyTo(buffer);
        var source = storageLoader is null ? null : new DelegateStorageSource(storageLoader);
        return PickleMachine.Run(buffer.ToArray(), source);
    }

    private static TorchCheckpointFile ReadFromZip(ZipArchive zip)
    {
        // torch.save names every entry "<prefix>/..." where the prefix is the file's stem (or
        // "archive"), so the pickle is found by its suffix rather than by a fixed name.
        var pickleEntry = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                                                          && e.FullName.IndexOf('/') == e.FullName.Length - "/data.pkl".Length)
                          ?? zip.GetEntry("data.pkl")
                          ?? throw new InvalidDataException(
                              $"the zip has no <prefix>/data.pkl entry (entries: {string.Join(", ", zip.Entries.Take(10).Select(e => e.FullName))})");
        string prefix = pickleEntry.FullName[..^"data.pkl".Length];

        var byteOrder = zip.GetEntry(prefix + "byteorder");
        if (byteOrder is not null)
        {
            string order = Encoding.ASCII.GetString(ReadEntry(byteOrder)).Trim();
            if (order != "little")
                throw new InvalidDataException($"the storages are stored in '{order}' byte order; only little-endian checkpoints are supported");
        }

        object? root = PickleMachine.Run(ReadEntry(pickleEntry), new ZipStorageSource(zip, prefix));
        return BuildCheckpoint(root);
    }

    private static TorchCheckpointFile BuildCheckpoint(object? root)
    {
        if (root is not PickleDict top)
            throw new InvalidDataException($"the top level is {PickleMachine.Describe(root)}, not a dict");
        var keys = top.Keys.Select(k => k as string ?? Convert.ToString(k, CultureInfo.InvariantCulture) ?? "None").ToList();

        PickleDict stateDict;
        long? epoch = null;
        IReadOnlyDictionary<string, object?> args = new Dictionary<string, object?>();
        if (top.TryGetValue("model", out var model))
        {
            stateDict = model as PickleDict
                        ?? throw new InvalidDataException($"the \"model\" entry is {PickleMachine.Describe(model)}, not a state dict");
            if (top.TryGetValue("epoch", out var e) && e is long epochValue)
                epoch = epochValue;
            if (top.TryGetValue("args", out var a))
                args = ArgsOf(a);
        }
        else if (top.Count > 0 && top.All(p => p.Key is string && p.Value is PickledTensor))
        {
            stateDict = top;
        }
        else
        {
            throw new InvalidDataException($"there is no \"model\" entry (top-level keys: {string.Join(", ", keys)})");
        }

        var tensors = new List<KeyValuePair<string, torch.Tensor>>(stateDict.Count);
        try
        {
            foreach (var (key, value) in stateDict)
            {
                string name = key as string
                              ?? throw new InvalidDataException($"the state dict has the key {PickleMachine.Describe(key)}, not a string");
                var tensor = value as PickledTensor
                             ?? throw new InvalidDataException($"the state dict entry '{name}' is {PickleMachine.Describe(value)}, not a tensor");
                tensors.Add(new(name, tensor.ToTensor()));
            }
        }
        catch
        {
            foreach (var pair in tensors)
                pair.Value.Dispose();
            throw;
        }
        return new TorchCheckpointFile(tensors, epoch, args, keys.AsReadOnly());
    }

    private static IReadOnlyDictionary<string, object?> ArgsOf(object? value)
    {
        switch (value)
        {
            case PickleNamespace ns:
                return new Dictionary<string, object?>(ns.Fields);
            case PickleDict dict:
                // Some training scripts save vars(args) instead of the Namespace itself.
                var fields = new Dictionary<string, object?>();
                foreach (var (key, item) in dict)
                    if (key is string name)
                        fields[name] = item;
                return fields;
            default:
                return new Dictionary<string, object?>();
        }
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry)
    {
        if (entry.Length > Array.MaxLength)
            throw new InvalidDataException($"the entry {entry.FullName} is too large ({entry.Length} bytes)");
        var bytes = new byte[entry.Length];
        using var stream = entry.Open();
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static string DescribeNonZip(FileStream file)
    {
        Span<byte> head = stackalloc byte[2];
        file.Seek(0, SeekOrigin.Begin);
        int read = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (read == 0)
            return "the file is empty";
        if (read == 2 && head[0] == 'P' && head[1] == 'K')
            return "the zip is truncated or corrupt (no central directory)";
        if (head[0] == 0x80)
            return "it looks like the legacy (pre-1.6) torch.save format; re-save it with a current PyTorch";
        return "no zip signature";
    }
}

/// <summary>
/// A Python dict (or <c>collections.OrderedDict</c>) from a pickle: insertion-ordered, keys compared
/// by value (tuples element-wise), so <c>dict["model"]</c> and <c>dict[0L]</c> work as in Python.
/// </summary>
public sealed class PickleDict : IReadOnlyCollection<KeyValuePair<object?, object?>>
{
    // Dictionary rejects null keys, while None is a valid Python key: it is stored as this sentinel.
    private static readonly object NoneKey = new();

    private readonly List<KeyValuePair<object?, object?>> _entries = [];
    private readonly Dictionary<object, int> _index = new(PickleValueComparer.Instance);

    /// <summary>Creates an empty dict.</summary>
    public PickleDict(bool isOrderedDict = false) => IsOrderedDict = isOrderedDict;

    /// <summary>True when the pickle built it as a <c>collections.OrderedDict</c>.</summary>
    public bool IsOrderedDict { get; }

    /// <summary>
    /// The state a BUILD opcode gave it (a state dict's <c>{"_metadata": ...}</c> attributes), if any.
    /// </summary>
    public object? State { get; internal set; }

    /// <inheritdoc />
    public int Count => _entries.Count;

    /// <summary>The keys, in insertion order.</summary>
    public IEnumerable<object?> Keys => _entries.Select(e => e.Key);

    /// <summary>Gets or sets a value; setting an existing key keeps its position, as in Python.</summary>
    public object? this[object? key]
    {
        get => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"the key {key} is not in the dict");
        set
        {
            if (_index.TryGetValue(key ?? NoneKey, out int position))
            {
                _entries[position] = new(_entries[position].Key, value);
            }
            else
            {
                _index.Add(key ?? NoneKey, _entries.Count);
                _entries.Add(new(key, value));
            }
        }
    }

    /// <summary>Whether the key is present.</summary>
    public bool ContainsKey(object? key) => _index.ContainsKey(key ?? NoneKey);

    /// <summary>Looks a key up.</summary>
    public bool TryGetValue(object? key, out object? value)
    {
        if (_index.TryGetValue(key ?? NoneKey, out int position))
        {
            value = _entries[position].Value;
            return true;
        }
        value = null;
        return false;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<object?, object?>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A reference to a Python global (<c>module.name</c>) that was not called.</summary>
public sealed class PickleGlobal(string module, string name)
{
    /// <summary>The module, e.g. <c>torch</c>.</summary>
    public string Module { get; } = module;

    /// <summary>The name inside the module, e.g. <c>FloatStorage</c>.</summary>
    public string Name { get; } = name;

    /// <summary><c>module.name</c>.</summary>
    public string FullName => $"{Module}.{Name}";

    /// <inheritdoc />
    public override string ToString() => FullName;
}

/// <summary>
/// A placeholder for an object of a class the reader does not model (<c>torch.device</c>,
/// <c>torch.Size</c>, <c>builtins.slice</c>, optimizer or scaler internals...): it records what the
/// pickle asked for so that loading goes on and the data stays inspectable.
/// </summary>
public sealed class PickleObject
{
    internal PickleObject(string module, string name, object?[] args, PickleDict? kwargs)
    {
        Module = module;
        Name = name;
        Args = args;
        Kwargs = kwargs;
    }

    /// <summary>The class or function's module.</summary>
    public string Module { get; }

    /// <summary>The class or function's name.</summary>
    public string Name { get; }

    /// <summary><c>module.name</c>.</summary>
    public string FullName => $"{Module}.{Name}";

    /// <summary>The positional arguments of the call (REDUCE, NEWOBJ).</summary>
    public IReadOnlyList<object?> Args { get; }

    /// <summary>The keyword arguments (NEWOBJ_EX), if any.</summary>
    public PickleDict? Kwargs { get; }

    /// <summary>The state a BUILD opcode gave it, if any.</summary>
    public object? State { get; internal set; }

    /// <summary>Items appended to it (list subclasses).</summary>
    public List<object?> ListItems { get; } = [];

    /// <summary>Items set on it (dict subclasses such as <c>collections.defaultdict</c>).</summary>
    public PickleDict DictItems { get; } = new();

    /// <inheritdoc />
    public override string ToString() => $"{FullName}(...)";
}

/// <summary>An <c>argparse.Namespace</c>: its fields come from the pickle's BUILD state.</summary>
public sealed class PickleNamespace
{
    /// <summary>The attributes, in file order.</summary>
    public Dictionary<string, object?> Fields { get; } = [];
}

/// <summary>
/// A storage named by a persistent id <c>('storage', torch.XStorage, key, location, numel)</c>.
/// Its bytes stay in the file until a tensor over it is materialised.
/// </summary>
public sealed class PickledStorage
{
    private readonly IStorageSource? _source;

    internal PickledStorage(string typeName, torch.ScalarType? dtype, string key, string location, long elementCount, IStorageSource? source)
    {
        TypeName = typeName;
        DType = dtype;
        Key = key;
        Location = location;
        ElementCount = elementCount;
        _source = source;
    }

    /// <summary>The storage class name, e.g. <c>FloatStorage</c>.</summary>
    public string TypeName { get; }

    /// <summary>The element type, or null for a storage class the reader does not know.</summary>
    public torch.ScalarType? DType { get; }

    /// <summary>The key: its bytes are the archive entry <c>data/&lt;key&gt;</c>.</summary>
    public string Key { get; }

    /// <summary>Where it lived when saved (<c>cpu</c>, <c>cuda:0</c>); tensors are loaded on the CPU anyway.</summary>
    public string Location { get; }

    /// <summary>The number of elements.</summary>
    public long ElementCount { get; }

    internal void ReadInto(long byteOffset, Span<byte> destination)
    {
        if (_source is null)
            throw new InvalidOperationException($"storage '{Key}' cannot be read: the pickle was read without a storage loader");
        _source.Read(Key, byteOffset, destination);
    }
}

/// <summary>
/// A tensor from <c>torch._utils._rebuild_tensor_v2</c>: a strided view of a storage. It is lazy, so
/// tensors nobody asks for (optimizer state) cost no memory; <see cref="ToTensor"/> makes the data.
/// </summary>
public sealed class PickledTensor
{
    internal PickledTensor(PickledStorage storage, long storageOffset, long[] shape, long[] strides, bool requiresGrad)
    {
        Storage = storage;
        StorageOffset = storageOffset;
        Shape = shape;
        Strides = strides;
        RequiresGrad = requiresGrad;
    }

    /// <summary>The storage it views.</summary>
    public PickledStorage Storage { get; }

    /// <summary>The first element's index in the storage.</summary>
    public long StorageOffset { get; }

    /// <summary>The size of each dimension.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The stride of each dimension, in elements.</summary>
    public IReadOnlyList<long> Strides { get; }

    /// <summary>Whether it required gradients when saved (not applied by <see cref="ToTensor"/>).</summary>
    public bool RequiresGrad { get; }

    /// <summary>
    /// Reads the viewed elements into a new contiguous CPU tensor owned by the caller (detached from
    /// any dispose scope). Only the storage range the view covers is read.
    /// </summary>
    public torch.Tensor ToTensor()
    {
        var dtype = Storage.DType
                    ?? throw new InvalidDataException($"storage '{Storage.Key}' has the unsupported type {Storage.TypeName}");
        long[] shape = [.. Shape];
        long[] strides = [.. Strides];

        using var scope = torch.NewDisposeScope();
        if (shape.Any(d => d == 0))
            return torch.empty(shape, dtype).DetachFromDisposeScope();

        // The view touches storage elements [offset, offset + extent): read just those.
        long extent = 1;
        for (int i = 0; i < shape.Length; i++)
            extent = checked(extent + (shape[i] - 1) * strides[i]);
        if (StorageOffset + extent > Storage.ElementCount)
            throw new InvalidDataException(
                $"a tensor of shape [{string.Join(", ", shape)}] at offset {StorageOffset} overruns storage '{Storage.Key}' of {Storage.ElementCount} elements");

        var raw = torch.empty([extent], dtype);
        long byteOffset = checked(StorageOffset * TensorBytes.ElementSize(dtype));
        TensorBytes.ForEachChunk(raw, (offset, chunk) => Storage.ReadInto(byteOffset + offset, chunk));

        // A contiguous view already is the answer (and shares `raw`'s memory, which then lives on
        // through it); any other stride pattern is copied into row-major order.
        var view = raw.as_strided(shape, strides, 0);
        var result = view.is_contiguous() ? view : view.contiguous();
        return result.DetachFromDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => $"tensor {Storage.TypeName}[{string.Join(", ", Shape)}]";
}

/// <summary>Where storage bytes come from: the checkpoint's zip, or a caller's loader.</summary>
internal interface IStorageSource
{
    void Read(string key, long byteOffset, Span<byte> destination);
}

internal sealed class DelegateStorageSource(Func<string, ReadOnlySpan<byte>> loader) : IStorageSource
{
    public void Read(string key, long byteOffset, Span<byte> destination)
    {
        var bytes = loader(key);
        if (byteOffset + destination.Length > bytes.Length)
            throw new InvalidDataException($"storage '{key}' has {bytes.Length} bytes; {byteOffset + destination.Length} are needed");
        bytes.Slice((int)byteOffset, destination.Length).CopyTo(destination);
    }
}

internal sealed class ZipStorageSource(ZipArchive zip, string prefix) : IStorageSource
{
    public void Read(string key, long byteOffset, Span<byte> destination)
    {
        string name = prefix + "data/" + key;
        var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"the storage entry {name} is missing");
        if (byteOffset + destination.Length > entry.Length)
            throw new InvalidDataException($"the storage entry {name} has {entry.Length} bytes; {byteOffset + destination.Length} are needed");

        using var stream = entry.Open();
        if (stream.CanSeek)
        {
            stream.Seek(byteOffset, SeekOrigin.Begin);
        }
        else
        {
            // Compressed entries cannot seek (torch.save stores them uncompressed, but other zip
            // tools may not): skip by reading.
            var skip = new byte[Math.Min(byteOffset, 1 << 20)];
            for (long left = byteOffset; left > 0;)
            {
                int read = stream.Read(skip, 0, (int)Math.Min(left, skip.Length));
                if (read == 0)
                    throw new EndOfStreamException($"the storage entry {name} ends early");
                left -= read;
            }
        }
        stream.ReadExactly(destination);
    }
}

/// <summary>
/// Python value equality for dict keys and set items: tuples and bytes compare element-wise,
/// everything else by <see cref="object.Equals(object?)"/>.
/// </summary>
internal sealed class PickleValueComparer : IEqualityComparer<object?>
{
    public static readonly PickleValueComparer Instance = new();

    public new bool Equals(object? x, object? y)
    {
        if (ReferenceEquals(x, y))
            return true;
        if (x is null || y is null)
            return false;
        if (x is object?[] a && y is object?[] b)
        {
            if (a.Length != b.Length)
                return false;
            for (int i = 0; i < a.Length; i++)
                if (!Equals(a[i], b[i]))
                    return false;
            return true;
        }
        if (x is byte[] p && y is byte[] q)
            return p.AsSpan().SequenceEqual(q);
        return x.Equals(y);
    }

    public int GetHashCode(object? obj)
    {
        switch (obj)
        {
            case null:
                return 0;
            case object?[] tuple:
                var hash = new HashCode();
                foreach (var item in tuple)
                    hash.Add(GetHashCode(item));
                return hash.ToHashCode();
            case byte[] bytes:
                var byteHash = new HashCode();
                byteHash.AddBytes(bytes);
                return byteHash.ToHashCode();
            default:
                return obj.GetHashCode();
        }
    }
}

/// <summary>
/// The pickle virtual machine: a stack, a mark stack and a memo, driven by one opcode at a time.
/// It never imports or runs anything; globals are resolved to the handful of constructors that
/// checkpoints need, and to placeholders otherwise.
/// </summary>
internal sealed class PickleMachine
{
    private const int HighestProtocol = 5;

    private readonly byte[] _data;
    private readonly IStorageSource? _storages;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private readonly Dictionary<string, PickledStorage> _storagesByKey = [];
    private int _position;
    private int _opcodeStart;

    private PickleMachine(byte[] data, IStorageSource? storages)
    {
        _data = data;
        _storages = storages;
    }

    public static object? Run(byte[] data, IStorageSource? storages) => new PickleMachine(data, storages).Run();

    /// <summary>A short description of a pickle value for error messages.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"the string '{s}'",
        PickleGlobal g => $"the global {g.FullName}",
        PickleObject o => $"a {o.FullName} object",
        PickledTensor => "a tensor",
        PickleDict => "a dict",
        object?[] => "a tuple",
        List<object?> => "a list",
        _ => $"a {value.GetType().Name} ({value})",
    };

    private object? Run()
    {
        while (true)
        {
            if (_position >= _data.Length)
                throw new InvalidDataException($"the pickle ends at byte {_position} without a STOP opcode");
            _opcodeStart = _position;
            byte opcode = _data[_position++];
            switch (opcode)
            {
                // Framing and protocol.
                case Op.Proto:
                    int protocol = ReadByte();
                    if (protocol > HighestProtocol)
                        throw Error($"pickle protocol {protocol} is not supported (highest: {HighestProtocol})");
                    break;
                case Op.Frame:
                    // Frames only help streaming readers; the whole pickle is in memory already.
                    ReadUInt64();
                    break;
                case Op.Stop:
                    return Pop();

                // Stack manipulation.
                case Op.Mark:
                    _marks.Push(_stack.Count);
                    break;
                case Op.Pop:
                    // As in CPython, POP on an empty frame discards the mark itself.
                    if (_marks.Count > 0 && _marks.Peek() == _stack.Count)
                        _marks.Pop();
                    else
                        Pop();
                    break;
                case Op.PopMark:
                    PopMark();
                    break;
                case Op.Dup:
                    _stack.Add(Peek());
                    break;

                // Constants and numbers.
                case Op.None:
                    _stack.Add(null);
                    break;
                case Op.NewTrue:
                    _stack.Add(true);
                    break;
                case Op.NewFalse:
                    _stack.Add(false);
                    break;
                case Op.BinInt:
                    _stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4)));
                    break;
                case Op.BinInt1:
                    _stack.Add((long)ReadByte());
                    break;
                case Op.BinInt2:
                    _stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadSpan(2)));
                    break;
                case Op.Long1:
                    _stack.Add(ReadLittleEndianInteger(ReadByte()));
                    break;
                case Op.Long4:
                    int longLength = BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4));
                    if (longLength < 0)
                        throw Error("LONG4 has a negative length");
                    _stack.Add(ReadLittleEndianInteger(longLength));
                    break;
                case Op.Int:
                    _stack.Add(ParseIntLine(ReadLine()));
                    break;
                case Op.Long:
                    _stack.Add(ParseInteger(ReadLine().TrimEnd('L')));
                    break;
                case Op.BinFloat:
                    // The one big-endian field of the format.
                    _stack.Add(BinaryPrimitives.ReadDoubleBigEndian(ReadSpan(8)));
                    break;
                case Op.Float:
                    _stack.Add(double.Parse(ReadLine(), NumberStyles.Float, CultureInfo.InvariantCulture));
                    break;

                // Strings and bytes.
                case Op.BinUnicode:
                    _stack.Add(Encoding.UTF8.GetString(ReadSpan(ReadUInt32())));
                    break;
                case Op.ShortBinUnicode:
                    _stack.Add(Encoding.UTF8.GetString(ReadSpan(ReadByte())));
                    break;
                case Op.BinUnicode8:
                    _stack.Add(Encoding.UTF8.GetString(ReadSpan(ReadUInt64())));
                    break;
                case Op.BinString:
                    int stringLength = BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4));
                    if (stringLength < 0)
                        throw Error("BINSTRING has a negative length");
                    // Python 2 byte strings: Latin-1 keeps every byte.
                    _stack.Add(Encoding.Latin1.GetString(ReadSpan((ulong)stringLength)));
                    break;
                case Op.ShortBinString:
                    _stack.Add(Encoding.Latin1.GetString(ReadSpan(ReadByte())));
                    break;
                case Op.ShortBinBytes:
                    _stack.Add(ReadSpan(ReadByte()).ToArray());
                    break;
                case Op.BinBytes:
                    _stack.Add(ReadSpan(ReadUInt32()).ToArray());
                    break;
                case Op.BinBytes8:
                case Op.ByteArray8:
                    _stack.Add(ReadSpan(ReadUInt64()).ToArray());
                    break;

                // Containers.
                case Op.EmptyTuple:
                    _stack.Add(Array.Empty<object?>());
                    break;
                case Op.Tuple1:
                    _stack.Add(new[] { Pop() });
                    break;
                case Op.Tuple2:
                {
                    var second = Pop();
                    var first = Pop();
                    _stack.Add(new[] { first, second });
                    break;
                }
                case Op.Tuple3:
                {
                    var third = Pop();
                    var second = Pop();
                    var first = Pop();
                    _stack.Add(new[] { first, second, third });
                    break;
                }
                case Op.Tuple:
                    _stack.Add(PopMark());
                    break;
                case Op.EmptyList:
                    _stack.Add(new List<object?>());
                    break;
                case Op.List:
                    _stack.Add(new List<object?>(PopMark()));
                    break;
                case Op.Append:
                {
                    var item = Pop();
                    Append(Peek(), [item]);
                    break;
                }
                case Op.Appends:
                {
                    var items = PopMark();
                    Append(Peek(), items);
                    break;
                }
                case Op.EmptyDict:
                    _stack.Add(new PickleDict());
                    break;
                case Op.Dict:
                {
                    var dict = new PickleDict();
                    SetItems(dict, PopMark());
                    _stack.Add(dict);
                    break;
                }
                case Op.SetItem:
                {
                    var value = Pop();
                    var key = Pop();
                    SetItems(Peek(), [key, value]);
                    break;
                }
                case Op.SetItems:
                {
                    var items = PopMark();
                    SetItems(Peek(), items);
                    break;
                }
                case Op.EmptySet:
                    _stack.Add(new HashSet<object?>(PickleValueComparer.Instance));
                    break;
                case Op.FrozenSet:
                    _stack.Add(new HashSet<object?>(PopMark(), PickleValueComparer.Instance));
                    break;
                case Op.AddItems:
                {
                    var items = PopMark();
                    if (Peek() is not HashSet<object?> set)
                        throw Error($"ADDITEMS on {Describe(Peek())}, not a set");
                    set.UnionWith(items);
                    break;
                }

                // Memo.
                case Op.Put:
                    _memo[ParseIndex(ReadLine())] = Peek();
                    break;
                case Op.BinPut:
                    _memo[ReadByte()] = Peek();
                    break;
                case Op.LongBinPut:
                    _memo[ReadUInt32()] = Peek();
                    break;
                case Op.Memoize:
                    _memo[_memo.Count] = Peek();
                    break;
                case Op.Get:
                    _stack.Add(MemoGet(ParseIndex(ReadLine())));
                    break;
                case Op.BinGet:
                    _stack.Add(MemoGet(ReadByte()));
                    break;
                case Op.LongBinGet:
                    _stack.Add(MemoGet(ReadUInt32()));
                    break;

                // Objects.
                case Op.Global:
                {
                    string module = ReadLine();
                    string name = ReadLine();
                    _stack.Add(new PickleGlobal(Python3Module(module), name));
                    break;
                }
                case Op.StackGlobal:
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                        throw Error("STACK_GLOBAL needs two strings");
                    _stack.Add(new PickleGlobal(Python3Module(m), n));
                    break;
                }
                case Op.Reduce:
                {
                    var args = AsTuple(Pop(), "REDUCE arguments");
                    var callable = Pop();
                    _stack.Add(Call(callable, args, null));
                    break;
                }
                case Op.NewObj:
                {
                    var args = AsTuple(Pop(), "NEWOBJ arguments");
                    var type = Pop();
                    _stack.Add(Call(type, args, null));
                    break;
                }
                case Op.NewObjEx:
                {
                    var kwargs = Pop() as PickleDict ?? throw Error("NEWOBJ_EX keyword arguments are not a dict");
                    var args = AsTuple(Pop(), "NEWOBJ_EX arguments");
                    var type = Pop();
                    _stack.Add(Call(type, args, kwargs));
                    break;
                }
                case Op.Build:
                {
                    var state = Pop();
                    Build(Peek(), state);
                    break;
                }
                case Op.BinPersId:
                    _stack.Add(PersistentLoad(Pop()));
                    break;
                case Op.PersId:
                    _stack.Add(PersistentLoad(ReadLine()));
                    break;

                default:
                    throw Error($"opcode 0x{opcode:x2} ('{(opcode is >= 0x20 and < 0x7f ? (char)opcode : '?')}') is not supported");
            }
        }
    }

    /// <summary>Calls (REDUCE) or instantiates (NEWOBJ) a global, for the globals checkpoints use.</summary>
    private object? Call(object? callable, object?[] args, PickleDict? kwargs)
    {
        if (callable is PickleObject callee)
            return CallPlaceholder(callee, args, kwargs);
        if (callable is not PickleGlobal global)
            throw Error($"cannot call {Describe(callable)}: only globals are callable");

        switch (global.FullName)
        {
            case "builtins.set":
            case "builtins.frozenset":
                // Protocol 2 has no set opcodes: set([items]). Built like EMPTY_SET + ADDITEMS.
                var set = new HashSet<object?>(PickleValueComparer.Instance);
                if (args.Length > 0 && args[0] is IEnumerable<object?> items)
                    set.UnionWith(items);
                return set;
            case "_codecs.encode" when args is [string text, "latin1" or "latin-1"]:
                // Protocol 2 has no bytes opcodes: bytes are written as encode(str, "latin1").
                return Encoding.Latin1.GetBytes(text);
            case "builtins.bytes" or "builtins.bytearray" when args.Length == 0:
                return Array.Empty<byte>();
            case "copyreg._reconstructor" when args.Length > 0:
                // Protocols 0 and 1 build plain objects as _reconstructor(cls, object, None).
                return Call(args[0], [], null);
            case "copyreg.__newobj__" when args.Length > 0:
                return Call(args[0], args[1..], null);
            case "copyreg.__newobj_ex__" when args is [var type, object?[] newArgs, PickleDict newKwargs]:
                return Call(type, newArgs, newKwargs);
            case "collections.OrderedDict":
            case "builtins.dict":
            {
                var dict = new PickleDict(isOrderedDict: global.Name == "OrderedDict");
                // OrderedDict(iterable_of_pairs); protocol 2 passes () and fills it by SETITEMS.
                if (args.Length > 0 && args[0] is IEnumerable<object?> pairs)
                    foreach (var pair in pairs)
                        if (pair is object?[] { Length: 2 } kv)
                            dict[kv[0]] = kv[1];
                return dict;
            }
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
                return RebuildTensor(args);
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                // A Parameter's data is the tensor; requires_grad and hooks do not matter for loading.
                return args.Length > 0 && args[0] is PickledTensor tensor
                    ? tensor
                    : throw Error($"{global.Name} expects a tensor, got {Describe(args.Length > 0 ? args[0] : null)}");
            case "torch._tensor._rebuild_from_type_v2":
                // (func, new_type, args, state): a tensor subclass; rebuild the plain tensor.
                if (args.Length >= 3 && args[2] is object?[] innerArgs)
                    return Call(args[0], innerArgs, null);
                break;
            case "argparse.Namespace":
            {
                var ns = new PickleNamespace();
                if (kwargs is not null)
                    foreach (var (key, value) in kwargs)
                        if (key is string name)
                            ns.Fields[name] = value;
                return ns;
            }
        }
        return new PickleObject(global.Module, global.Name, args, kwargs);
    }

    /// <summary>
    /// Calls a placeholder. Protocol 2 writes <c>cls.__new__(cls, *args, **kwargs)</c> (classes with
    /// <c>__getnewargs_ex__</c>, such as <c>torch.device</c>) as
    /// <c>functools.partial(getattr(object, "__new__"), cls, *args, **kwargs)()</c>; that pattern is
    /// resolved to the constructor call it stands for. Any other call gives a placeholder too.
    /// </summary>
    private object? CallPlaceholder(PickleObject callee, object?[] args, PickleDict? kwargs)
    {
        // A partial's BUILD state is (func, args, kwargs, __dict__).
        if (callee.FullName == "functools.partial" && callee.State is object?[] { Length: >= 3 } partial && partial[1] is object?[] boundArgs)
        {
            var merged = new PickleDict();
            foreach (var source in new[] { partial[2] as PickleDict, kwargs })
                if (source is not null)
                    foreach (var (key, value) in source)
                        merged[key] = value;
            return Call(partial[0], [.. boundArgs, .. args], merged.Count > 0 ? merged : null);
        }
        if (callee is { FullName: "builtins.getattr", Args: [PickleGlobal { FullName: "builtins.object" }, "__new__"] } && args.Length > 0)
            return Call(args[0], args[1..], kwargs);
        return new PickleObject(callee.Module, callee.Name + "(...)", args, kwargs);
    }

    /// <summary>Python 2 module names, which protocol 2 pickles use, mapped as CPython's unpickler maps them.</summary>
    private static string Python3Module(string module) => module switch
    {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        _ => module,
    };

    /// <summary><c>_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])</c>.</summary>
    private PickledTensor RebuildTensor(object?[] args)
    {
        if (args.Length < 4)
            throw Error($"a tensor needs at least 4 rebuild arguments, got {args.Length}");
        var storage = args[0] as PickledStorage ?? throw Error($"a tensor's storage is {Describe(args[0])}");
        long offset = AsLong(args[1], "storage offset");
        long[] shape = AsLongs(args[2], "size");
        long[] strides = AsLongs(args[3], "stride");
        if (shape.Length != strides.Length)
            throw Error($"a tensor has {shape.Length} sizes but {strides.Length} strides");
        if (offset < 0 || shape.Any(d => d < 0) || strides.Any(s => s < 0))
            throw Error("a tensor has a negative offset, size or stride");
        bool requiresGrad = args.Length > 4 && args[4] is true;
        return new PickledTensor(storage, offset, shape, strides, requiresGrad);
    }

    private object? PersistentLoad(object? pid)
    {
        if (pid is not object?[] { Length: >= 5 } fields || fields[0] is not "storage")
            throw Error($"unsupported persistent id {Describe(pid)}; expected ('storage', type, key, location, numel)");

        string typeName = fields[1] switch
        {
            PickleGlobal g => g.Name,
            string s => s,
            var other => throw Error($"a storage type is {Describe(other)}"),
        };
        string key = fields[2] as string ?? Convert.ToString(fields[2], CultureInfo.InvariantCulture) ?? "";
        string location = fields[3] as string ?? "";
        long count = AsLong(fields[4], "storage size");

        // torch.save memoizes each storage once, but a hand-made pickle may repeat the id.
        if (!_storagesByKey.TryGetValue(key, out var storage))
        {
            storage = new PickledStorage(typeName, StorageDType(typeName), key, location, count, _storages);
            _storagesByKey[key] = storage;
        }
        return storage;
    }

    private static torch.ScalarType? StorageDType(string typeName) => typeName switch
    {
        "FloatStorage" => torch.ScalarType.Float32,
        "HalfStorage" => torch.ScalarType.Float16,
        "BFloat16Storage" => torch.ScalarType.BFloat16,
        "DoubleStorage" => torch.ScalarType.Float64,
        "LongStorage" => torch.ScalarType.Int64,
        "IntStorage" => torch.ScalarType.Int32,
        "ShortStorage" => torch.ScalarType.Int16,
        "CharStorage" => torch.ScalarType.Int8,
        "ByteStorage" or "UntypedStorage" => torch.ScalarType.Byte,
        "BoolStorage" => torch.ScalarType.Bool,
        "ComplexFloatStorage" => torch.ScalarType.ComplexFloat32,
        "ComplexDoubleStorage" => torch.ScalarType.ComplexFloat64,
        // Unknown (quantized, float8...): kept, and only an error if such a tensor is materialised.
        _ => null,
    };

    private void Build(object? target, object? state)
    {
        switch (target)
        {
            case PickleNamespace ns:
                // The state is the instance __dict__, or (dict, slots) for classes with slots.
                var dict = state as PickleDict ?? (state as object?[])?.FirstOrDefault() as PickleDict;
                if (dict is not null)
                    foreach (var (key, value) in dict)
                        if (key is string name)
                            ns.Fields[name] = value;
                break;
            case PickleObject obj:
                obj.State = state;
                break;
            case PickleDict d:
                d.State = state;
                break;
            case PickledTensor:
                // Python attributes set on a tensor: nothing a state dict needs.
                break;
            default:
                throw Error($"BUILD cannot set state on {Describe(target)}");
        }
    }

    private void Append(object? target, IReadOnlyList<object?> items)
    {
        switch (target)
        {
            case List<object?> list:
                list.AddRange(items);
                break;
            case PickleObject obj:
                obj.ListItems.AddRange(items);
                break;
            default:
                throw Error($"cannot append to {Describe(target)}");
        }
    }

    private void SetItems(object? target, object?[] keysAndValues)
    {
        if (keysAndValues.Length % 2 != 0)
            throw Error("SETITEMS needs key/value pairs");
        var dict = target switch
        {
            PickleDict d => d,
            PickleObject obj => obj.DictItems,
            _ => throw Error($"cannot set items on {Describe(target)}"),
        };
        for (int i = 0; i < keysAndValues.Length; i += 2)
            dict[keysAndValues[i]] = keysAndValues[i + 1];
    }

    private object? MemoGet(long index) =>
        _memo.TryGetValue(index, out var value) ? value : throw Error($"memo entry {index} was never stored");

    private object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor)
            throw Error("the stack is empty");
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek()
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor)
            throw Error("the stack is empty");
        return _stack[^1];
    }

    /// <summary>Pops everything above the last MARK, and the mark.</summary>
    private object?[] PopMark()
    {
        if (_marks.Count == 0)
            throw Error("there is no MARK on the stack");
        int start = _marks.Pop();
        var items = _stack.GetRange(start, _stack.Count - start).ToArray();
        _stack.RemoveRange(start, _stack.Count - start);
        return items;
    }

    private byte ReadByte() => ReadSpan(1)[0];

    private uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4));

    private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadSpan(8));

    private ReadOnlySpan<byte> ReadSpan(ulong count)
    {
        if (count > (ulong)(_data.Length - _position))
            throw Error($"the pickle is truncated: {count} bytes needed, {_data.Length - _position} left");
        var span = _data.AsSpan(_position, (int)count);
        _position += (int)count;
        return span;
    }

    /// <summary>Reads up to the next newline (text opcodes of protocol 0 and GLOBAL).</summary>
    private string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0)
            throw Error("the pickle is truncated inside a text argument");
        string line = Encoding.UTF8.GetString(_data, _position, end - _position);
        _position = end + 1;
        return line;
    }

    private object ReadLittleEndianInteger(int length)
    {
        var value = new BigInteger(ReadSpan((ulong)length), isUnsigned: false, isBigEndian: false);
        // Boxing each branch keeps the conditional from widening the long back to a BigInteger.
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private object ParseIntLine(string line) => line switch
    {
        // Protocol 0 spells True and False as INT 01 and INT 00.
        "01" => true,
        "00" => false,
        _ => ParseInteger(line),
    };

    private object ParseInteger(string text)
    {
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long small))
            return small;
        if (BigInteger.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big))
            return big;
        throw Error($"'{text}' is not an integer");
    }

    private long ParseIndex(string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long index) ? index : throw Error($"'{text}' is not a memo index");

    private object?[] AsTuple(object? value, string what) => value switch
    {
        object?[] tuple => tuple,
        List<object?> list => [.. list],
        _ => throw Error($"{what} are {Describe(value)}, not a tuple"),
    };

    private long AsLong(object? value, string what) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        BigInteger big when big >= long.MinValue && big <= long.MaxValue => (long)big,
        _ => throw Error($"the {what} is {Describe(value)}, not an integer"),
    };

    private long[] AsLongs(object? value, string what) => value switch
    {
        object?[] tuple => tuple.Select(v => AsLong(v, what)).ToArray(),
        List<object?> list => list.Select(v => AsLong(v, what)).ToArray(),
        // torch.Size((...)) pickled as a call keeps its tuple as the first argument.
        PickleObject { FullName: "torch.Size", Args: [object?[] dims, ..] } => dims.Select(v => AsLong(v, what)).ToArray(),
        _ => throw Error($"the {what} is {Describe(value)}, not a tuple of integers"),
    };

    private InvalidDataException Error(string message) =>
        new($"Pickle opcode at byte {_opcodeStart}: {message}");

    /// <summary>Opcode bytes, named as in CPython's pickletools.</summary>
    private static class Op
    {
        public const byte Mark = (byte)'(';
        public const byte Stop = (byte)'.';
        public const byte Pop = (byte)'0';
        public const byte PopMark = (byte)'1';
        public const byte Dup = (byte)'2';
        public const byte Float = (byte)'F';
        public const byte Int = (byte)'I';
        public const byte BinInt = (byte)'J';
        public const byte BinInt1 = (byte)'K';
        public const byte Long = (byte)'L';
        public const byte BinInt2 = (byte)'M';
        public const byte None = (byte)'N';
        public const byte PersId = (byte)'P';
        public const byte BinPersId = (byte)'Q';
        public const byte Reduce = (byte)'R';
        public const byte BinString = (byte)'T';
        public const byte ShortBinString = (byte)'U';
        public const byte BinUnicode = (byte)'X';
        public const byte Append = (byte)'a';
        public const byte Build = (byte)'b';
        public const byte Global = (byte)'c';
        public const byte Dict = (byte)'d';
        public const byte EmptyDict = (byte)'}';
        public const byte Appends = (byte)'e';
        public const byte Get = (byte)'g';
        public const byte BinGet = (byte)'h';
        public const byte LongBinGet = (byte)'j';
        public const byte List = (byte)'l';
        public const byte EmptyList = (byte)']';
        public const byte Put = (byte)'p';
        public const byte BinPut = (byte)'q';
        public const byte LongBinPut = (byte)'r';
        public const byte SetItem = (byte)'s';
        public const byte Tuple = (byte)'t';
        public const byte EmptyTuple = (byte)')';
        public const byte SetItems = (byte)'u';
        public const byte BinFloat = (byte)'G';
        public const byte BinBytes = (byte)'B';
        public const byte ShortBinBytes = (byte)'C';
        public const byte Proto = 0x80;
        public const byte NewObj = 0x81;
        public const byte Tuple1 = 0x85;
        public const byte Tuple2 = 0x86;
        public const byte Tuple3 = 0x87;
        public const byte NewTrue = 0x88;
        public const byte NewFalse = 0x89;
        public const byte Long1 = 0x8a;
        public const byte Long4 = 0x8b;
        public const byte ShortBinUnicode = 0x8c;
        public const byte BinUnicode8 = 0x8d;
        public const byte BinBytes8 = 0x8e;
        public const byte EmptySet = 0x8f;
        public const byte AddItems = 0x90;
        public const byte FrozenSet = 0x91;
        public const byte NewObjEx = 0x92;
        public const byte StackGlobal = 0x93;
        public const byte Memoize = 0x94;
        public const byte Frame = 0x95;
        public const byte ByteArray8 = 0x96;
    }
}
