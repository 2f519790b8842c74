using System.Buffers.Binary;

namespace FractalMesh.Data;

/// <summary>
/// The FMDS file format: one file holds one split of a labelled image dataset.
/// </summary>
/// <remarks>
/// All integers are little-endian.
/// <list type="table">
///   <listheader><term>offset</term><description>content</description></listheader>
///   <item><term>0</term><description>magic: the 4 ASCII bytes <c>FMDS</c></description></item>
///   <item><term>4</term><description>uint32 format version, 1</description></item>
///   <item><term>8</term><description>uint32 record count N</description></item>
///   <item><term>12</term><description>uint32 image height H</description></item>
///   <item><term>16</term><description>uint32 image width W</description></item>
///   <item><term>20</term><description>uint32 channels C, 3 (RGB)</description></item>
///   <item><term>24</term><description>
///     N records, each: uint16 label, then C*H*W bytes in CHW order (planar: the H×W red plane row by row,
///     then green, then blue; 0–255 sRGB, opaque).
///   </description></item>
/// </list>
/// A file is therefore exactly <c>24 + N*(2 + C*H*W)</c> bytes long, which the reader checks.
/// Class names live in <c>manifest.json</c> beside the split files (see <see cref="ImageDataset"/>).
/// </remarks>
public static class FmdsFile
{
    /// <summary>The magic bytes that open every FMDS file.</summary>
    public static ReadOnlySpan<byte> Magic => "FMDS"u8;

    /// <summary>The format version this code writes and reads.</summary>
    public const uint FormatVersion = 1;

    /// <summary>The size of the header in bytes.</summary>
    public const int HeaderSize = 24;

    /// <summary>The only channel count written: RGB.</summary>
    public const int Channels = 3;

    /// <summary>
    /// Writes a split file. It is written beside its final path and then moved into place, so a build that
    /// stops half-way never leaves a truncated file that looks complete.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="height">Image height.</param>
    /// <param name="width">Image width.</param>
    /// <param name="labels">One label per image, 0–65535.</param>
    /// <param name="pixels">The images one after the other, each <c>3*height*width</c> bytes in CHW order.</param>
    public static void Write(string path, int height, int width, IReadOnlyList<int> labels, ReadOnlySpan<byte> pixels)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        var imageBytes = Channels * height * width;
        if (pixels.Length != (long)labels.Count * imageBytes)
            throw new ArgumentException($"Expected {labels.Count}×{imageBytes} pixel bytes, got {pixels.Length}.", nameof(pixels));

        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temporaryPath = path + ".partial";
        using (var stream = new FileStream(temporaryPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            Span<byte> header = stackalloc byte[HeaderSize];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteUInt32LittleEndian(header[4..], FormatVersion);
            BinaryPrimitives.WriteUInt32LittleEndian(header[8..], (uint)labels.Count);
            BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)height);
            BinaryPrimitives.WriteUInt32LittleEndian(header[16..], (uint)width);
            BinaryPrimitives.WriteUInt32LittleEndian(header[20..], Channels);
            stream.Write(header);

            Span<byte> label = stackalloc byte[2];
            for (var i = 0; i < labels.Count; i++)
            {
                if (labels[i] is < 0 or > ushort.MaxValue)
                    throw new ArgumentOutOfRangeException(nameof(labels), $"Label {labels[i]} of image {i} does not fit in 16 bits.");
                BinaryPrimitives.WriteUInt16LittleEndian(label, (ushort)labels[i]);
                stream.Write(label);
                stream.Write(pixels.Slice(i * imageBytes, imageBytes));
            }
        }
        File.Move(temporaryPath, path, overwrite: true);
    }
}
