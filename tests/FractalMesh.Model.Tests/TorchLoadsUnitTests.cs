using Xunit;
namespace FractalMesh.Model.Tests;
public class TorchLoadsUnitTests
{
    [Fact]
    public void MatmulRunsInTestHost() => Assert.Equal(64f, Probe.Dot());
}
