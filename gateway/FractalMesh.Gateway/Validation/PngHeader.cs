using System.Buffers.Binary;

namespace FractalMesh.Gateway.Validation;

/// <summary>Reads a PNG's size from its IHDR chunk, so oversized images are refused before anything is decoded.</summary>
public static class PngHeader
{
    static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The width and height the PNG declares, or null when the bytes do not start like a PNG.</summary>
    public static (int Width, int Height)? ReadSize(ReadOnlySpan<byte> png)
    {
        // signature (8) | IHDR length (4) | "IHDR" (4) | width (4, big-endian) | height (4, big-endian)
        if (png.Length < 24 || !png[..8].SequenceEqual(Signature) || !png.Slice(12, 4).SequenceEqual("IHDR"u8)) return null;
        uint width = BinaryPrimitives.ReadUInt32BigEndian(png.Slice(16, 4)), height = BinaryPrimitives.ReadUInt32BigEndian(png.Slice(20, 4));
        return width is 0 or > int.MaxValue || height is 0 or > int.MaxValue ? null : ((int)width, (int)height);
    }
}
