using SkiaSharp;

namespace FractalMesh.Data;

/// <summary>Lays dataset images out in a grid and saves it as a PNG, for a person to look at.</summary>
public static class ContactSheet
{
    /// <summary>
    /// Saves images <paramref name="indices"/> of <paramref name="dataset"/> as a grid of <paramref name="columns"/>
    /// columns, each pixel drawn as a <paramref name="scale"/>×<paramref name="scale"/> block (nearest neighbour, so
    /// what is seen is what the model gets), with a one-pixel grey gutter between images.
    /// </summary>
    public static void SavePng(ImageDataset dataset, IReadOnlyList<int> indices, int columns, int scale, string path)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scale);
        const int gutter = 1;
        var rows = (indices.Count + columns - 1) / columns;
        var cellWidth = dataset.Width * scale + gutter;
        var cellHeight = dataset.Height * scale + gutter;
        using var bitmap = new SKBitmap(new SKImageInfo(
            Math.Max(1, columns * cellWidth + gutter), Math.Max(1, rows * cellHeight + gutter), SKColorType.Rgba8888, SKAlphaType.Opaque));
        bitmap.Erase(new SKColor(128, 128, 128));

        var plane = dataset.Height * dataset.Width;
        for (var n = 0; n < indices.Count; n++)
        {
            var image = dataset.GetImage(indices[n]);
            var originX = gutter + n % columns * cellWidth;
            var originY = gutter + n / columns * cellHeight;
            for (var y = 0; y < dataset.Height; y++)
            for (var x = 0; x < dataset.Width; x++)
            {
                var p = y * dataset.Width + x;
                var color = new SKColor(image[p], image[plane + p], image[2 * plane + p]);
                for (var dy = 0; dy < scale; dy++)
                for (var dx = 0; dx < scale; dx++)
                    bitmap.SetPixel(originX + x * scale + dx, originY + y * scale + dy, color);
            }
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
            Directory.CreateDirectory(directory);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
                         ?? throw new InvalidOperationException("SkiaSharp could not encode the PNG.");
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
