using FractalMesh.Model.Modules;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

public class MarConditionsUnitTests
{
    /// <summary>
    /// The conditions gathered for a few patches equal the reference's construction: the output grid and its copies shifted
    /// down, left, up and right with a zero border, read at those patches.
    /// </summary>
    [Fact]
    public void GatheredConditionsEqualTheShiftedGrids()
    {
        using var generator = new MarGenerator(seqLen: 16, patchSize: 2, condWidth: 8, width: 8, depth: 1, heads: 2,
            numConds: 5, guidingPixel: false, attnDropout: 0, projDropout: 0);
        using var scope = NewDisposeScope();
        manual_seed(3);
        long n = 3, g = 4, c = 8;
        var encoded = randn(n, 16, c);
        var grid = encoded.reshape(n, g, g, c);
        var zRow = zeros(n, 1, g, c);
        var zCol = zeros(n, g, 1, c);
        Tensor[] expected =
        [
            encoded,
            cat([zRow, grid.narrow(1, 0, g - 1)], 1).reshape(n, 16, c),
            cat([grid.narrow(2, 1, g - 1), zCol], 2).reshape(n, 16, c),
            cat([grid.narrow(1, 1, g - 1), zRow], 1).reshape(n, 16, c),
            cat([zCol, grid.narrow(2, 0, g - 1)], 2).reshape(n, 16, c),
        ];
        long[] index = [0, 3, 5, 12, 15, 16 + 6, 2 * 16 + 10, 2 * 16 + 15];
        var gathered = generator.Conditions(encoded, index, 5);
        for (int k = 0; k < 5; k++)
        {
            var want = expected[k].reshape(-1, c).index_select(0, tensor(index));
            Assert.Equal(want.data<float>().ToArray(), gathered[k].data<float>().ToArray());
        }
        // Fewer when the level below reads fewer, and never more than five.
        Assert.Single(generator.Conditions(encoded, index, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => generator.Conditions(encoded, index, 6));
    }
}
