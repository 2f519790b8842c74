using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model;

/// <summary>
/// Pixel normalization and patch layout shared by every level (docs/ARCHITECTURE.md, The model): values are
/// <c>(v/255 - mean) / std</c> with ImageNet statistics, so normalized values map back to bytes exactly.
/// </summary>
public static class Pixels
{
    public static readonly float[] Mean = [0.485f, 0.456f, 0.406f];
    public static readonly float[] Std = [0.229f, 0.224f, 0.225f];

    /// <summary>Bytes (B,3,H,W) uint8 → normalized float32 (B,3,H,W).</summary>
    public static Tensor Normalize(Tensor bytes)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(Mean, device: bytes.device).view(1, 3, 1, 1);
        var std = tensor(Std, device: bytes.device).view(1, 3, 1, 1);
        return (bytes.to_type(ScalarType.Float32).div(Scalars.ByteMax).sub(mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>Normalized values (..., 3) in channel order → integer byte ids (..., 3), rounded to nearest.</summary>
    public static Tensor ToByteIds(Tensor normalizedRgbLast)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(Mean, device: normalizedRgbLast.device);
        var std = tensor(Std, device: normalizedRgbLast.device);
        return (normalizedRgbLast * std + mean).mul(255f).round().clamp(0, 255).to_type(ScalarType.Int64).MoveToOuterDisposeScope();
    }

    /// <summary>(B,3,H,W) → (B, (H/p)·(W/p), 3·p·p), patches in raster order, each patch channel-major.</summary>
    public static Tensor Patchify(Tensor images, int patch)
    {
        long b = images.shape[0], c = images.shape[1], h = images.shape[2] / patch, w = images.shape[3] / patch;
        using var x = images.reshape(b, c, h, patch, w, patch);        // (n, c, h, p, w, q)
        using var y = x.permute(0, 2, 4, 1, 3, 5);                   // (n, h, w, c, p, q)
        return y.reshape(b, h * w, c * patch * patch);
    }

    /// <summary>Inverse of <see cref="Patchify"/> for a square grid.</summary>
    public static Tensor Unpatchify(Tensor patches, int patch)
    {
        long b = patches.shape[0], grid = (long)Math.Round(Math.Sqrt(patches.shape[1]));
        using var x = patches.reshape(b, grid, grid, 3, patch, patch); // (n, h, w, c, p, q)
        using var y = x.permute(0, 3, 1, 4, 2, 5);                   // (n, c, h, p, w, q)
        return y.reshape(b, 3, grid * patch, grid * patch);
    }
}
