using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

/// <summary>The native libtorch loads in the test host (the build's libstdc++ fix works) and computes.</summary>
public class TorchLoadsUnitTests
{
    [Fact]
    public void MatmulAndAutogradRunInTestHost()
    {
        using var scope = NewDisposeScope();
        var a = ones(4, 4, requires_grad: true);
        var b = a.matmul(a).sum();
        b.backward();
        Assert.Equal(64f, b.item<float>());
        Assert.Equal(8f, a.grad!.mean().item<float>());
    }
}
