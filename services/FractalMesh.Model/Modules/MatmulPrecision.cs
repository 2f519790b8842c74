using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FractalMesh.Model.Modules;

/// <summary>
/// Matrix products in a lower precision than the parameters (mixed precision, as PyTorch's autocast does for
/// <c>linear</c>): the input and the weights are cast to <see cref="ScalarType.BFloat16"/>, multiplied there, and the
/// product comes back in the input's type, so norms, GELU, softmax, the residual stream and the loss stay in float32 and
/// the float32 parameters receive float32 gradients (the casts' backward converts them). bfloat16 keeps float32's
/// exponent range, so no loss scaling is needed. A training option (<see cref="FractalModel.UseMatmulType"/>): it applies
/// only while the layer is in training mode, so evaluation and sampling (which put the model in eval mode) stay float32
/// whatever it is set to; in training the function is float32's to bfloat16's precision, not bit for bit.
/// </summary>
internal static class MatmulPrecision
{
    /// <summary><c>layer(x)</c>, with the product in <paramref name="type"/> when it is set, differs from x's and the layer trains.</summary>
    public static Tensor Linear(Linear layer, Tensor x, ScalarType? type)
    {
        if (type is not ScalarType t || t == x.dtype || !layer.training) return layer.call(x);
        using var scope = NewDisposeScope();
        var y = F.linear(x.to_type(t), layer.weight!.to_type(t), layer.bias?.to_type(t));
        return y.to_type(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary><c>a·bᵀ</c>, with the product in <paramref name="type"/> when it is set, differs from a's and <paramref name="training"/>.</summary>
    public static Tensor MatmulTransposed(Tensor a, Tensor b, ScalarType? type, bool training)
    {
        if (type is not ScalarType t || t == a.dtype || !training) return a.matmul(b.t());
        using var scope = NewDisposeScope();
        return a.to_type(t).matmul(b.to_type(t).t()).to_type(a.dtype).MoveToOuterDisposeScope();
    }
}
