using SkiaSharp;

namespace FractalMesh.Imaging;

/// <summary>RGB images as planar bytes (3×H×W, the layout the model uses) to and from PNG, through SkiaSharp.</summary>
public static class PngImage
{
    /// <summary>Encodes planar RGB bytes as an opaque PNG.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> planar, int width, int height, int scale = 1)
    {
        if (planar.Length != 3 * width * height) throw new ArgumentException($"expected {3 * width * height} bytes for {width}×{height} RGB, got {planar.Length}");
        using var bitmap = new SKBitmap(new SKImageInfo(width * scale, height * scale, SKColorType.Rgba8888, SKAlphaType.Opaque));
        int plane = width * height;
        for (int y = 0; y < height * scale; y++)
            for (int x = 0; x < width * scale; x++)
            {
                int i = (y / scale) * width + x / scale;
                bitmap.SetPixel(x, y, new SKColor(planar[i], planar[plane + i], planar[2 * plane + i]));
            }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp could not encode the PNG");
        return data.ToArray();
    }

    /// <summary>Decodes a PNG (or any format Skia reads) to planar RGB over white; alpha is composited.</summary>
    public static (byte[] Planar, int Width, int Height) Decode(byte[] encoded, string what)
    {
        SKBitmap? bitmap;
        try { bitmap = SKBitmap.Decode(encoded); }
        catch (ArgumentException) { bitmap = null; } // Skia reports an unknown format as a null codec argument
        using var decoded = bitmap ?? throw new InvalidDataException($"{what} is not a readable image");
        int w = decoded.Width, h = decoded.Height, plane = w * h;
        var planar = new byte[3 * plane];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = decoded.GetPixel(x, y);
                int a = c.Alpha, i = y * w + x;
                planar[i] = (byte)((c.Red * a + 255 * (255 - a) + 127) / 255);
                planar[plane + i] = (byte)((c.Green * a + 255 * (255 - a) + 127) / 255);
                planar[2 * plane + i] = (byte)((c.Blue * a + 255 * (255 - a) + 127) / 255);
            }
        return (planar, w, h);
    }

    /// <summary>Lays out equally sized planar images in a grid with a 1-pixel white gutter.</summary>
    public static (byte[] Planar, int Width, int Height) Grid(IReadOnlyList<byte[]> images, int size, int columns)
    {
        int rows = (images.Count + columns - 1) / columns, gutter = 1;
        int w = columns * (size + gutter) + gutter, h = rows * (size + gutter) + gutter, plane = w * h;
        var grid = new byte[3 * plane];
        Array.Fill(grid, (byte)255);
        for (int k = 0; k < images.Count; k++)
        {
            int ox = gutter + k % columns * (size + gutter), oy = gutter + k / columns * (size + gutter);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                        grid[c * plane + (oy + y) * w + ox + x] = images[k][c * size * size + y * size + x];
        }
        return (grid, w, h);
    }
}
