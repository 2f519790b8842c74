using System.Globalization;
using SkiaSharp;
using Svg.Skia;

namespace FractalMesh.Data;

/// <summary>Renders an Iconify icon with Svg.Skia into planar RGB bytes on an opaque white background.</summary>
public static class SvgIconRenderer
{
    /// <summary>The SVG document of an icon: its body inside an <c>&lt;svg&gt;</c> whose view box is the icon's.</summary>
    /// <remarks>
    /// <c>xmlns:xlink</c> is declared because some Noto bodies use <c>xlink:href</c> without declaring it (Iconify's
    /// own renderer adds it the same way). <c>width</c>/<c>height</c> give the output size, and the default
    /// <c>preserveAspectRatio</c> (xMidYMid meet) centres the few icons whose view box is not square.
    /// </remarks>
    public static string ToSvgDocument(IconifyIcon icon, int size) => string.Create(CultureInfo.InvariantCulture,
        $"<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"{size}\" height=\"{size}\" viewBox=\"{icon.Left} {icon.Top} {icon.Width} {icon.Height}\">{icon.Body}</svg>");

    /// <summary>Renders <paramref name="icon"/> at <paramref name="size"/>×<paramref name="size"/>.</summary>
    /// <returns><c>3*size*size</c> bytes in CHW order: all red values row by row, then green, then blue.</returns>
    /// <exception cref="InvalidDataException">Svg.Skia cannot parse the icon.</exception>
    public static byte[] RenderChw(IconifyIcon icon, int size)
    {
        var rgba = RenderRgba(icon, size);
        var pixelCount = size * size;
        var chw = new byte[3 * pixelCount];
        for (var i = 0; i < pixelCount; i++)
        {
            chw[i] = rgba[4 * i];
            chw[pixelCount + i] = rgba[4 * i + 1];
            chw[2 * pixelCount + i] = rgba[4 * i + 2];
        }
        return chw;
    }

    private static byte[] RenderRgba(IconifyIcon icon, int size)
    {
        using var svg = SKSvg.CreateFromSvg(ToSvgDocument(icon, size));
        var picture = svg.Picture ?? throw new InvalidDataException($"Svg.Skia could not render the icon '{icon.Name}'.");

        // Unpremultiplied RGBA: the background is opaque, so every pixel is opaque and the bytes are plain sRGB.
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            // Svg.Skia sizes the picture from the svg's width/height; scale in case it reports the view box instead.
            var bounds = picture.CullRect;
            if (bounds.Width > 0 && bounds.Height > 0 && (Math.Abs(bounds.Width - size) > 0.01f || Math.Abs(bounds.Height - size) > 0.01f))
            {
                var scale = size / Math.Max(bounds.Width, bounds.Height);
                canvas.Translate((size - bounds.Width * scale) / 2, (size - bounds.Height * scale) / 2);
                canvas.Scale(scale);
            }
            canvas.DrawPicture(picture);
            canvas.Flush();
        }

        var pixels = bitmap.GetPixelSpan();
        if (bitmap.RowBytes != 4 * size || pixels.Length < 4 * size * size)
            throw new InvalidOperationException($"SkiaSharp gave an unexpected pixel layout for '{icon.Name}'.");
        var rgba = pixels[..(4 * size * size)].ToArray();
        return rgba;
    }
}
