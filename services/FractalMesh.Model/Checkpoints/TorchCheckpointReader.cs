using System.Collections;
using System.IO.Compression;
using System.Text;
using TorchSharp;
using TorchSharp.PyBridge;

namespace FractalMesh.Model.Checkpoints;

/// <summary>
/// The parts of an official PyTorch checkpoint (<c>torch.save({"model": ..., "epoch": ..., "args": ..., ...})</c>)
/// that FractalMesh uses. It owns the <see cref="Model"/> tensors: disposing it disposes them.
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

    /// <summary>
    /// The <c>"model"</c> state dict as contiguous CPU tensors, ordered by name. PyBridge reads an OrderedDict into a
    /// hash table, so the file's order is not known; loading goes key for key and does not need it.
    /// </summary>
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
    /// The fields of the <c>argparse.Namespace</c> (or dict) stored under <c>"args"</c>, empty if absent. Values are
    /// Razorvine.Pickle's: <see cref="string"/>, <see cref="bool"/>, <see cref="double"/>, null, <see cref="ArrayList"/>
    /// for lists, <c>object[]</c> for tuples; Python ints are <see cref="long"/> here.
    /// </summary>
    public IReadOnlyDictionary<string, object?> Args { get; }

    /// <summary>The keys of the top-level dict, ordered by name (the file's order is not known, as for <see cref="Model"/>).</summary>
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
/// Reads the zip format written by <c>torch.save</c> through TorchSharp.PyBridge's <see cref="PyTorchUnpickler"/>
/// (Razorvine.Pickle underneath: it builds plain values and never executes code; an <c>argparse.Namespace</c> becomes
/// a dictionary of its fields).
/// </summary>
/// <remarks>
/// Kept here, because PyBridge does not do it:
/// <list type="bullet">
/// <item>Checking the container first (a zip with a <c>&lt;prefix&gt;/data.pkl</c>, little-endian storages), so that a
/// wrong file gives an <see cref="InvalidDataException"/> that says what is wrong with it: PyBridge ignores the
/// <c>byteorder</c> entry and reports a non-zip or legacy (pre-1.6) file only as a zip error.</item>
/// <item>Disposing every tensor that is not in the state dict (optimizer state): PyBridge materialises all tensors
/// of the file (its lazy <c>skipTensorRead</c> descriptors are internal), so a training checkpoint with AdamW state
/// briefly takes about three times the model's size in memory while it is read.</item>
/// <item>Turning Razorvine's values into the ones FractalMesh uses (ints as <see cref="long"/>, the state dict as
/// named tensors) and any failure into an <see cref="InvalidDataException"/> that names the file.</item>
/// </list>
/// What PyBridge 1.4.4 on TorchSharp 0.107 cannot read, and a <c>model.state_dict()</c> does not hold: a view that is
/// not contiguous or starts at an offset into a shared storage (TorchSharp refuses to fill it: "Bytes() called on
/// non-contiguous tensor", "setStorage: ... out of bounds"), a pickled <c>torch.nn.Parameter</c> (PyBridge takes it for
/// a whole pickled module), and outside the state dict a <c>frozenset</c> or an object pickled with keyword arguments
/// such as <c>torch.device</c> (Razorvine.Pickle). Such a file gives an <see cref="InvalidDataException"/>.
/// </remarks>
public static class TorchCheckpointReader
{
    /// <summary>
    /// Reads a checkpoint and turns its <c>"model"</c> state dict into TorchSharp CPU tensors, which the returned object
    /// owns. A file whose top level is itself a state dict (string keys, tensor values) is accepted too. A file that is
    /// not a readable zip-format checkpoint, or has no <c>"model"</c>, gives an <see cref="InvalidDataException"/> that
    /// names it.
    /// </summary>
    public static TorchCheckpointFile ReadCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("reading PyTorch checkpoints needs a little-endian machine");

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        CheckContainer(file, path);
        file.Seek(0, SeekOrigin.Begin);

        // PyBridge makes every tensor of the file; the scope disposes all but the state dict's on the way out.
        using var scope = torch.NewDisposeScope();
        Hashtable top;
        try
        {
            top = PyTorchUnpickler.UnpickleStateDict(file, leaveOpen: true, skipTensorRead: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"Cannot read the PyTorch checkpoint '{path}': {e.Message}", e);
        }
        return Build(top, path);
    }

    private static TorchCheckpointFile Build(Hashtable top, string path)
    {
        var keys = top.Keys.Cast<object>().Select(k => k.ToString() ?? "None").Order(StringComparer.Ordinal).ToList();

        IDictionary stateDict;
        long? epoch = null;
        IReadOnlyDictionary<string, object?> args = new Dictionary<string, object?>();
        if (top.ContainsKey("model"))
        {
            stateDict = top["model"] as IDictionary
                        ?? throw new InvalidDataException($"The \"model\" entry of '{path}' is {Describe(top["model"])}, not a state dict");
            epoch = top["epoch"] switch { int e => e, long e => e, _ => null };
            args = ArgsOf(top["args"]);
        }
        else if (top.Count > 0 && top.Keys.Cast<object>().All(k => k is string) && top.Values.Cast<object?>().All(v => v is torch.Tensor))
        {
            stateDict = top;
        }
        else
        {
            throw new InvalidDataException($"'{path}' has no \"model\" entry (top-level keys: {string.Join(", ", keys)})");
        }

        var tensors = new List<KeyValuePair<string, torch.Tensor>>(stateDict.Count);
        try
        {
            foreach (DictionaryEntry entry in stateDict)
            {
                string name = entry.Key as string
                              ?? throw new InvalidDataException($"The state dict of '{path}' has the key {Describe(entry.Key)}, not a string");
                var tensor = entry.Value as torch.Tensor
                             ?? throw new InvalidDataException($"The state dict entry '{name}' of '{path}' is {Describe(entry.Value)}, not a tensor");
                tensors.Add(new(name, (tensor.is_contiguous() ? tensor : tensor.contiguous()).DetachFromDisposeScope()));
            }
        }
        catch
        {
            foreach (var pair in tensors)
                pair.Value.Dispose();
            throw;
        }
        tensors.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return new TorchCheckpointFile(tensors, epoch, args, keys.AsReadOnly());
    }

    private static IReadOnlyDictionary<string, object?> ArgsOf(object? value)
    {
        var fields = new Dictionary<string, object?>();
        // An argparse.Namespace arrives as Razorvine's ClassDict (a dictionary with a "__class__" entry); some training
        // scripts save vars(args), a plain dict.
        if (value is IDictionary<string, object> classDict)
        {
            foreach (var (name, item) in classDict)
                if (name != "__class__")
                    fields[name] = Plain(item);
        }
        else if (value is IDictionary dict)
        {
            foreach (DictionaryEntry entry in dict)
                if (entry.Key is string name)
                    fields[name] = Plain(entry.Value);
        }
        return fields;
    }

    private static object? Plain(object? value) => value is int i ? (long)i : value;

    private static string Describe(object? value) => value is null ? "None" : value.GetType().Name;

    /// <summary>A zip with a pickle and little-endian storages, or an <see cref="InvalidDataException"/> that says why not.</summary>
    private static void CheckContainer(FileStream file, string path)
    {
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
            // torch.save names every entry "<prefix>/..." where the prefix is the file's stem (or "archive").
            var pickle = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                                                         && e.FullName.IndexOf('/') == e.FullName.Length - "/data.pkl".Length)
                         ?? throw new InvalidDataException(
                             $"'{path}' has no <prefix>/data.pkl entry (entries: {string.Join(", ", zip.Entries.Take(10).Select(e => e.FullName))})");
            string prefix = pickle.FullName[..^"data.pkl".Length];
            if (zip.GetEntry(prefix + "byteorder") is { } byteOrder)
            {
                using var reader = new StreamReader(byteOrder.Open(), Encoding.ASCII);
                string order = reader.ReadToEnd().Trim();
                if (order != "little")
                    throw new InvalidDataException($"The storages of '{path}' are stored in '{order}' byte order; only little-endian checkpoints are supported");
            }
        }
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
