using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Modules;

/// <summary>The reference's weight initialization: xavier-uniform linear weights, zero biases, unit LayerNorms.</summary>
internal static class Init
{
    public static void LinearsAndNorms(nn.Module root)
    {
        using var _ = no_grad();
        foreach (var (_, m) in root.named_modules())
        {
            switch (m)
            {
                case Linear lin:
                    nn.init.xavier_uniform_(lin.weight!);
                    if (lin.bias is not null) nn.init.zeros_(lin.bias);
                    break;
                case LayerNorm ln:
                    if (ln.weight is not null) nn.init.ones_(ln.weight);
                    if (ln.bias is not null) nn.init.zeros_(ln.bias);
                    break;
            }
        }
    }
}
