namespace FractalMesh.Imaging;

/// <summary>
/// Whether a generated image is nearly blank: at least 90 % of its pixels are near white (every channel at least 235).
/// Emoji sit on white, so a sampler that settles on background patches early draws an almost empty canvas; the model
/// card counts these on its sample sheets, and <c>fractalmesh generate</c> prints the count.
/// </summary>
public static class NearlyBlank
{
    /// <summary>The lowest channel value that still counts as near white.</summary>
    public const byte NearWhite = 235;

    /// <summary>The share of near-white pixels from which an image counts as nearly blank.</summary>
    public const double Share = 0.9;

    /// <summary>True when at least <see cref="Share"/> of the pixels of a planar 3×H×W image have every channel ≥ <see cref="NearWhite"/>.</summary>
    public static bool Is(ReadOnlySpan<byte> planar, int width, int height)
    {
        int plane = width * height;
        if (planar.Length != 3 * plane) throw new ArgumentException($"expected {3 * plane} bytes for {width}×{height} RGB, got {planar.Length}");
        int white = 0;
        for (int i = 0; i < plane; i++)
            if (planar[i] >= NearWhite && planar[plane + i] >= NearWhite && planar[2 * plane + i] >= NearWhite) white++;
        return white >= Share * plane;
    }
}
