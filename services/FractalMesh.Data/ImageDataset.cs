using System.Buffers.Binary;
using System.Text.Json;

namespace FractalMesh.Data;

/// <summary>One split of a labelled image dataset, read whole into memory from an FMDS file (<see cref="FmdsFile"/>).</summary>
public sealed class ImageDataset
{
    /// <summary>The name of the manifest that sits beside the split files.</summary>
    public const string ManifestFileName = "manifest.json";

    private ImageDataset(string path, int height, int width, int[] labels, byte[] pixels, IReadOnlyList<string> classNames)
    {
        Path = path;
        Height = height;
        Width = width;
        Labels = labels;
        Pixels = pixels;
        ClassNames = classNames;
    }

    /// <summary>The file this split was read from.</summary>
    public string Path { get; }

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Channels per pixel: always 3 (RGB).</summary>
    public int Channels => FmdsFile.Channels;

    /// <summary>Bytes per image: <c>Channels*Height*Width</c>.</summary>
    public int ImageByteCount => Channels * Height * Width;

    /// <summary>The class label of each image.</summary>
    public int[] Labels { get; }

    /// <summary>All images, contiguous N×3×H×W bytes (CHW per image, 0–255).</summary>
    public byte[] Pixels { get; }

    /// <summary>Class names in label order, from <c>manifest.json</c> beside the file; empty when there is none.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The CHW bytes of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> GetImage(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Pixels.AsSpan(index * ImageByteCount, ImageByteCount);
    }

    /// <summary>Reads a split file such as <c>data/emoji32/train.fmds</c>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file (or the manifest beside it) is not a valid dataset; the message names the path.</exception>
    public static ImageDataset Load(string splitFile)
    {
        var path = System.IO.Path.GetFullPath(splitFile);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Dataset file not found: {path}", path);

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < FmdsFile.HeaderSize || !bytes.AsSpan(0, 4).SequenceEqual(FmdsFile.Magic))
            throw new InvalidDataException($"{path} is not an FMDS dataset file (no 'FMDS' header).");
        var version = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4));
        if (version != FmdsFile.FormatVersion)
            throw new InvalidDataException($"{path} has FMDS version {version}; this reader reads version {FmdsFile.FormatVersion}.");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        var height = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(12));
        var width = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(16));
        var channels = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(20));
        if (channels != FmdsFile.Channels || height is 0 or > 4096 || width is 0 or > 4096)
            throw new InvalidDataException($"{path} has an invalid header: {channels} channels, {height}×{width} images.");

        var imageBytes = (long)channels * height * width;
        var expectedLength = FmdsFile.HeaderSize + count * (2 + imageBytes);
        if (bytes.LongLength != expectedLength)
            throw new InvalidDataException(
                $"{path} is {bytes.LongLength} bytes but its header ({count} images of {channels}×{height}×{width}) needs {expectedLength}: the file is truncated or corrupt.");

        var labels = new int[count];
        var pixels = new byte[count * imageBytes];
        var offset = FmdsFile.HeaderSize;
        for (var i = 0; i < count; i++)
        {
            labels[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(offset));
            offset += 2;
            bytes.AsSpan(offset, (int)imageBytes).CopyTo(pixels.AsSpan((int)(i * imageBytes)));
            offset += (int)imageBytes;
        }

        var classNames = ReadClassNames(path);
        if (classNames.Count > 0 && labels.Any(label => label >= classNames.Count))
            throw new InvalidDataException(
                $"{path} has label {labels.Max()} but the manifest beside it names only {classNames.Count} classes.");
        return new ImageDataset(path, (int)height, (int)width, labels, pixels, classNames);
    }

    private static IReadOnlyList<string> ReadClassNames(string splitPath)
    {
        var manifestPath = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(splitPath)!, ManifestFileName);
        if (!File.Exists(manifestPath))
            return [];
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(manifestPath));
            if (!document.RootElement.TryGetProperty("classNames", out var names) || names.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{manifestPath} has no 'classNames' list.");
            return names.EnumerateArray()
                .Select(name => name.GetString() ?? throw new InvalidDataException($"{manifestPath}: a class name is not a string."))
                .ToList();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{manifestPath} is not valid JSON: {e.Message}", e);
        }
    }
}
