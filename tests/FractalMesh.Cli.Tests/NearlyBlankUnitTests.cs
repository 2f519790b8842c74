using FractalMesh.Imaging;
using Xunit;

namespace FractalMesh.Cli.Tests;

public sealed class NearlyBlankUnitTests
{
    const int Size = 10; // 100 pixels: 90 near white is the boundary

    /// <summary>A white 10×10 image with the first <paramref name="inked"/> pixels set to <paramref name="rgb"/>.</summary>
    static byte[] Image(int inked, (byte R, byte G, byte B) rgb)
    {
        var planar = new byte[3 * Size * Size];
        Array.Fill(planar, (byte)255);
        for (int i = 0; i < inked; i++)
            (planar[i], planar[Size * Size + i], planar[2 * Size * Size + i]) = rgb;
        return planar;
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(10, true)]   // exactly 90 % near white
    [InlineData(11, false)]
    [InlineData(100, false)]
    public void CountsAnImageAsBlankFromNinetyPercentNearWhite(int inked, bool blank) =>
        Assert.Equal(blank, NearlyBlank.Is(Image(inked, (0, 0, 0)), Size, Size));

    [Theory]
    [InlineData(235, 235, 235, true)]
    [InlineData(234, 255, 255, false)]
    [InlineData(255, 234, 255, false)]
    [InlineData(255, 255, 234, false)]
    public void APixelIsNearWhiteOnlyWhenEveryChannelIsAtLeast235(byte r, byte g, byte b, bool blank) =>
        Assert.Equal(blank, NearlyBlank.Is(Image(11, (r, g, b)), Size, Size));

    [Fact]
    public void RefusesBytesThatAreNotThreePlanesOfTheSize() =>
        Assert.Throws<ArgumentException>(() => NearlyBlank.Is(new byte[3 * Size * Size - 1], Size, Size));
}
