namespace FractalMesh.Imaging;

/// <summary>
/// Stray pixels of a generated image: pixels that differ from every one of their neighbours (up, down, left, right) by
/// more than <see cref="Difference"/> in some channel. A pixel-by-pixel sampler that draws an unlikely value leaves one
/// such speck inside a flat shape; drawn emoji have very few. The model card compares sampling settings by their mean,
/// and <c>fractalmesh generate</c> prints it.
/// </summary>
public static class StrayPixels
{
    /// <summary>How far (in 0-255 units, in the channel that differs most) a pixel must be from each neighbour.</summary>
    public const int Difference = 64;

    /// <summary>The number of stray pixels of a planar 3×H×W image.</summary>
    public static int Count(ReadOnlySpan<byte> planar, int width, int height)
    {
        int plane = width * height;
        if (planar.Length != 3 * plane) throw new ArgumentException($"expected {3 * plane} bytes for {width}×{height} RGB, got {planar.Length}");
        if (plane == 1) return 0; // no neighbour to differ from
        int stray = 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = y * width + x;
                bool apart = (x == 0 || Apart(planar, plane, i, i - 1))
                    && (x == width - 1 || Apart(planar, plane, i, i + 1))
                    && (y == 0 || Apart(planar, plane, i, i - width))
                    && (y == height - 1 || Apart(planar, plane, i, i + width));
                if (apart) stray++;
            }
        return stray;
    }

    static bool Apart(ReadOnlySpan<byte> planar, int plane, int a, int b) =>
        Math.Abs(planar[a] - planar[b]) > Difference
        || Math.Abs(planar[plane + a] - planar[plane + b]) > Difference
        || Math.Abs(planar[2 * plane + a] - planar[2 * plane + b]) > Difference;
}
