using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FractalMesh.Model.Modules;

/// <summary>Root-mean-square norm without bias (LlamaGen, eps 1e-5).</summary>
public sealed class RmsNorm : nn.Module
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(int dim, double eps = 1e-5) : base(nameof(RmsNorm))
    {
        this.eps = eps;
        weight = new Parameter(ones(dim));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var normed = x * (x * x).mean([-1L], keepdim: true).add(eps).rsqrt();
        return (normed * weight).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU feed-forward: <c>w2(silu(w1 x) * w3 x)</c>, hidden width 2/3·4·dim rounded up to a multiple of 256.</summary>
public sealed class SwiGluFeedForward : nn.Module
{
    private readonly Linear w1;
    private readonly Linear w3;
    private readonly Linear w2;
    [ComponentName(Name = "ffn_dropout")]
    private readonly Dropout dropout;

    /// <summary>The type of the layers' products, or null for the parameters' own (<see cref="MatmulPrecision"/>).</summary>
    public ScalarType? MatmulType { get; set; }

    public SwiGluFeedForward(int dim, double dropoutP) : base(nameof(SwiGluFeedForward))
    {
        int hidden = HiddenWidth(dim);
        w1 = nn.Linear(dim, hidden, hasBias: false);
        w3 = nn.Linear(dim, hidden, hasBias: false);
        w2 = nn.Linear(hidden, dim, hasBias: false);
        dropout = nn.Dropout(dropoutP);
        RegisterComponents();
    }

    /// <summary>LlamaGen's rule: <c>find_multiple(int(2·4·dim/3), 256)</c>.</summary>
    public static int HiddenWidth(int dim)
    {
        int hidden = 2 * (4 * dim) / 3;
        return hidden % 256 == 0 ? hidden : hidden + 256 - hidden % 256;
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gated = F.silu(MatmulPrecision.Linear(w1, x, MatmulType)) * MatmulPrecision.Linear(w3, x, MatmulType);
        return dropout.call(MatmulPrecision.Linear(w2, gated, MatmulType)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Keys and values of one AR generator's blocks for positions already seen, so that sampling runs one
/// patch per step (paper §3.3). Owned by the sampling call that creates it; disposing frees every tensor.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] keys;
    private readonly Tensor?[] values;

    public KvCache(int blocks)
    {
        keys = new Tensor?[blocks];
        values = new Tensor?[blocks];
    }

    /// <summary>Number of positions cached so far.</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    /// <summary>Appends one step's (B,H,T,D) keys and values for block <paramref name="block"/>; returns all cached ones.</summary>
    internal (Tensor Keys, Tensor Values) Append(int block, Tensor k, Tensor v)
    {
        var newK = keys[block] is null ? k.clone() : cat([keys[block]!, k], 2);
        var newV = values[block] is null ? v.clone() : cat([values[block]!, v], 2);
        keys[block]?.Dispose();
        values[block]?.Dispose();
        keys[block] = newK.DetachFromDisposeScope();
        values[block] = newV.DetachFromDisposeScope();
        return (keys[block]!, values[block]!);
    }

    public void Dispose()
    {
        foreach (var t in keys) t?.Dispose();
        foreach (var t in values) t?.Dispose();
        Array.Clear(keys);
        Array.Clear(values);
    }
}

/// <summary>Causal attention with 2-D rotary position embedding and no biases (LlamaGen naming: <c>wqkv</c>, <c>wo</c>).</summary>
public sealed class RotaryAttention : nn.Module
{
    private readonly Linear wqkv;
    private readonly Linear wo;
    [ComponentName(Name = "resid_dropout")]
    private readonly Dropout residDropout;
    private readonly int heads;

    /// <summary>The type of the projections' products, or null for the parameters' own (<see cref="MatmulPrecision"/>).</summary>
    public ScalarType? MatmulType { get; set; }

    public RotaryAttention(int dim, int heads, double residDropoutP) : base(nameof(RotaryAttention))
    {
        if (dim % heads != 0) throw new ArgumentException($"width {dim} is not divisible by {heads} heads");
        this.heads = heads;
        wqkv = nn.Linear(dim, dim * 3, hasBias: false);
        wo = nn.Linear(dim, dim, hasBias: false);
        residDropout = nn.Dropout(residDropoutP);
        RegisterComponents();
    }

    /// <summary>
    /// <paramref name="x"/> (B,T,C) at positions whose rotary table is <paramref name="rope"/> (T, D/2, 2).
    /// Without a cache the T positions attend causally among themselves; with one they attend to every cached position and themselves.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor rope, KvCache? cache, int block)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], c = x.shape[2], hd = c / heads;
        var qkv = MatmulPrecision.Linear(wqkv, x, MatmulType).split([c, c, c], -1);
        var q = Rotary2D.Apply(qkv[0].view(b, t, heads, hd), rope).transpose(1, 2); // (B, H, T, D)
        var k = Rotary2D.Apply(qkv[1].view(b, t, heads, hd), rope).transpose(1, 2);
        var v = qkv[2].view(b, t, heads, hd).transpose(1, 2);
        Tensor o;
        if (cache is null)
        {
            o = F.scaled_dot_product_attention(q, k, v, null, 0.0, true);
        }
        else
        {
            if (t != 1) throw new ArgumentException("a KV-cache step takes one position at a time");
            var (keys, values) = cache.Append(block, k, v);
            o = F.scaled_dot_product_attention(q, keys, values, null, 0.0, false); // the newest position sees all cached ones
        }
        o = o.transpose(1, 2).contiguous().view(b, t, c);
        return residDropout.call(MatmulPrecision.Linear(wo, o, MatmulType)).MoveToOuterDisposeScope();
    }
}

/// <summary>LlamaGen transformer block: RMSNorm, rotary causal attention, RMSNorm, SwiGLU.</summary>
public sealed class LlamaBlock : nn.Module
{
    private readonly RotaryAttention attention;
    [ComponentName(Name = "feed_forward")]
    private readonly SwiGluFeedForward feedForward;
    [ComponentName(Name = "attention_norm")]
    private readonly RmsNorm attentionNorm;
    [ComponentName(Name = "ffn_norm")]
    private readonly RmsNorm ffnNorm;

    public LlamaBlock(int dim, int heads, double dropout) : base(nameof(LlamaBlock))
    {
        attention = new RotaryAttention(dim, heads, dropout);
        feedForward = new SwiGluFeedForward(dim, dropout);
        attentionNorm = new RmsNorm(dim);
        ffnNorm = new RmsNorm(dim);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor rope, KvCache? cache, int block)
    {
        using var scope = NewDisposeScope();
        var h = x.add(attention.Forward(attentionNorm.Forward(x), rope, cache, block), Scalars.One);
        return h.add(feedForward.Forward(ffnNorm.Forward(h)), Scalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The 2-D rotary table of LlamaGen/FractalGen: half of each head's pairs rotate with the patch row, half with its column;
/// the condition token in front gets an all-zero table (the reference's <c>cls_token_num=1</c> zeros, which zero its q and k).
/// </summary>
public static class Rotary2D
{
    /// <summary>(1 + grid², headDim/2, 2) table of (cos, sin).</summary>
    public static Tensor Table(int grid, int headDim, double theta = 10000.0)
    {
        using var scope = NewDisposeScope();
        int half = headDim / 2;
        var freqs = 1.0 / pow(theta, arange(0, half, 2, dtype: ScalarType.Float32).narrow(0, 0, half / 2) / half); // (half/2)
        var t = arange(grid, dtype: ScalarType.Float32);
        var f = outer(t, freqs);                                                   // (grid, half/2)
        var fg = cat([f.unsqueeze(1).expand(grid, grid, half / 2), f.unsqueeze(0).expand(grid, grid, half / 2)], -1); // (grid, grid, half)
        var table = stack([cos(fg), sin(fg)], -1).flatten(0, 1);                   // (grid², half, 2)
        return cat([zeros(1, half, 2), table], 0).MoveToOuterDisposeScope();
    }

    /// <summary>x (B,T,H,D) rotated pairwise by table (T, D/2, 2).</summary>
    public static Tensor Apply(Tensor x, Tensor table)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], h = x.shape[2], d = x.shape[3];
        var xs = x.reshape(b, t, h, d / 2, 2);
        var f = table.view(1, t, 1, d / 2, 2);
        var (x0, x1) = (xs.select(-1, 0), xs.select(-1, 1));
        var (c, s) = (f.select(-1, 0), f.select(-1, 1));
        return stack([x0 * c - x1 * s, (x1 * c).add(x0 * s, Scalars.One)], -1).flatten(3).MoveToOuterDisposeScope();
    }
}
