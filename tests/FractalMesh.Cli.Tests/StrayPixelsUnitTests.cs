using FractalMesh.Imaging;
using Xunit;

namespace FractalMesh.Cli.Tests;

public sealed class StrayPixelsUnitTests
{
    const int Size = 6;

    /// <summary>A white 6×6 image with the given pixels (x, y) set to <paramref name="rgb"/>.</summary>
    static byte[] Image((byte R, byte G, byte B) rgb, params (int X, int Y)[] inked)
    {
        var planar = new byte[3 * Size * Size];
        Array.Fill(planar, (byte)255);
        foreach (var (x, y) in inked)
        {
            int i = y * Size + x;
            (planar[i], planar[Size * Size + i], planar[2 * Size * Size + i]) = rgb;
        }
        return planar;
    }

    [Fact]
    public void AFlatImageHasNone() => Assert.Equal(0, StrayPixels.Count(Image((0, 0, 0)), Size, Size));

    [Fact]
    public void ALonePixelUnlikeItsNeighboursIsOneWhereverItIs()
    {
        Assert.Equal(1, StrayPixels.Count(Image((0, 0, 0), (2, 3)), Size, Size));
        Assert.Equal(1, StrayPixels.Count(Image((0, 0, 0), (0, 0)), Size, Size)); // a corner has two neighbours
        Assert.Equal(1, StrayPixels.Count(Image((0, 0, 0), (5, 2)), Size, Size)); // an edge has three
        Assert.Equal(2, StrayPixels.Count(Image((0, 0, 0), (1, 1), (4, 4)), Size, Size));
    }

    [Fact]
    public void PixelsWithALikeNeighbourAreAShapeNotStray()
    {
        Assert.Equal(0, StrayPixels.Count(Image((0, 0, 0), (2, 2), (3, 2)), Size, Size));
        Assert.Equal(0, StrayPixels.Count(Image((0, 0, 0), (2, 2), (2, 3), (3, 2), (3, 3)), Size, Size));
        // Diagonal neighbours do not count as like: two pixels touching at a corner are both stray.
        Assert.Equal(2, StrayPixels.Count(Image((0, 0, 0), (2, 2), (3, 3)), Size, Size));
    }

    [Theory]
    [InlineData(191, 255, 255, 0)] // 64 apart in red: not more than the threshold
    [InlineData(190, 255, 255, 1)] // 65 apart in red
    [InlineData(255, 190, 255, 1)]
    [InlineData(255, 255, 190, 1)]
    public void ApartMeansMoreThanTheThresholdInSomeChannel(byte r, byte g, byte b, int stray) =>
        Assert.Equal(stray, StrayPixels.Count(Image((r, g, b), (2, 2)), Size, Size));

    [Fact]
    public void ACheckerboardIsAllStrayAndAOnePixelImageNone()
    {
        var inked = Enumerable.Range(0, Size * Size).Select(i => (X: i % Size, Y: i / Size)).Where(p => (p.X + p.Y) % 2 == 0).ToArray();
        Assert.Equal(Size * Size, StrayPixels.Count(Image((0, 0, 0), inked), Size, Size));
        Assert.Equal(0, StrayPixels.Count(new byte[] { 0, 0, 0 }, 1, 1));
    }

    [Fact]
    public void RefusesBytesThatAreNotThreePlanesOfTheSize() =>
        Assert.Throws<ArgumentException>(() => StrayPixels.Count(new byte[3 * Size * Size - 1], Size, Size));
}
