using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

public class PixelsUnitTests
{
    [Theory]
    [InlineData(16, 4)]
    [InlineData(32, 4)]
    [InlineData(4, 1)]
    [InlineData(64, 16)]
    public void PatchifyThenUnpatchifyIsTheIdentity(int size, int patch)
    {
        using var scope = NewDisposeScope();
        var images = randn(3, 3, size, size);
        var patches = Pixels.Patchify(images, patch);
        Assert.Equal(new long[] { 3, (size / patch) * (size / patch), 3 * patch * patch }, patches.shape);
        Assert.True(TestData.Same(Pixels.Unpatchify(patches, patch), images));
    }

    [Fact]
    public void PatchesAreRasterOrderedAndChannelMajor()
    {
        using var scope = NewDisposeScope();
        var images = arange(3 * 4 * 4, dtype: ScalarType.Float32).reshape(1, 3, 4, 4);
        var patches = Pixels.Patchify(images, 2);
        // Patch 1 is the top-right 2×2 block; its first entries are channel 0 rows 0–1, columns 2–3.
        Assert.Equal(new float[] { 2, 3, 6, 7, 18, 19, 22, 23 }, patches[0, 1].narrow(0, 0, 8).data<float>().ToArray());
    }

    [Fact]
    public void NormalizedBytesRoundTripExactly()
    {
        using var scope = NewDisposeScope();
        var bytes = arange(256, dtype: ScalarType.Int64).remainder(256).to_type(ScalarType.Byte);
        var images = bytes.repeat(3).reshape(1, 3, 16, 16);
        var normalized = Pixels.Normalize(images);
        var ids = Pixels.ToByteIds(normalized.permute(0, 2, 3, 1).reshape(-1, 3));
        Assert.True(TestData.Same(ids, images.permute(0, 2, 3, 1).reshape(-1, 3).to_type(ScalarType.Int64)));
    }
}
