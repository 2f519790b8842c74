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

    /// <summary>
    /// Whether the chunks after the signature (length | type | data | CRC each) fit the bytes exactly and the last is IEND:
    /// a truncated PNG fails this, where a decoder would quietly return the rows it could read.
    /// </summary>
    public static bool IsComplete(ReadOnlySpan<byte> png)
    {
        int at = 8;
        while (at + 12 <= png.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(png.Slice(at, 4));
            if (length > int.MaxValue || length > png.Length - at - 12) return false;
            bool end = png.Slice(at + 4, 4).SequenceEqual("IEND"u8);
            at += 12 + (int)length;
            if (end) return at == png.Length;
        }
        return false;
    }
}
