using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FractalMesh.Model.Modules;

/// <summary>Multi-head self-attention with a fused qkv projection (timm ViT naming: <c>qkv</c>, <c>proj</c>).</summary>
public sealed class SelfAttention : nn.Module
{
    private readonly Linear qkv;
    private readonly Linear proj;
    [ComponentName(Name = "proj_drop")]
    private readonly Dropout projDrop;
    private readonly int heads;
    private readonly double attnDropout;
    private readonly bool causal;

    /// <summary>The type of the projections' products, or null for the parameters' own (<see cref="MatmulPrecision"/>).</summary>
    public ScalarType? MatmulType { get; set; }

    public SelfAttention(int dim, int heads, bool causal, double attnDropout, double projDropout) : base(nameof(SelfAttention))
    {
        if (dim % heads != 0) throw new ArgumentException($"width {dim} is not divisible by {heads} heads");
        this.heads = heads;
        this.causal = causal;
        this.attnDropout = attnDropout;
        qkv = nn.Linear(dim, dim * 3, hasBias: true);
        proj = nn.Linear(dim, dim, hasBias: true);
        projDrop = nn.Dropout(projDropout);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var parts = MatmulPrecision.Linear(qkv, x, MatmulType).reshape(b, n, 3, heads, c / heads).permute(2, 0, 3, 1, 4); // (3, B, H, N, C/H)
        var (q, k, v) = (parts[0], parts[1], parts[2]);
        // Attention logits in float32 as the reference does (it disables autocast there).
        var o = n <= ShortSequence && (attnDropout == 0 || !training)
            ? ShortAttention(q, k, v)
            : F.scaled_dot_product_attention(q, k, v, null, training ? attnDropout : 0.0, causal); // (B, H, N, C/H)
        o = o.transpose(1, 2).reshape(b, n, c);
        return projDrop.call(MatmulPrecision.Linear(proj, o, MatmulType)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Longest sequence (the pixel head's three positions) attended by plain products rather than the fused kernel: at a
    /// few positions per row the CPU kernel's per-(row, head) blocking costs more than the work, above all in its backward
    /// (measured at 20,480 rows × 4 heads × 3 positions: forward and backward 2.4× faster this way).
    /// </summary>
    const long ShortSequence = 4;

    /// <summary>softmax(q·kᵀ/√d [+ causal mask])·v for (B,H,N,D) inputs, as scaled_dot_product_attention computes it.</summary>
    Tensor ShortAttention(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        long n = q.shape[2];
        var scores = q.matmul(k.transpose(-1, -2)).mul_(1.0 / Math.Sqrt(q.shape[3]));            // (B, H, N, N)
        if (causal) scores = scores.masked_fill_(ones(n, n, dtype: ScalarType.Bool, device: q.device).triu_(1), double.NegativeInfinity);
        return softmax(scores, -1).matmul(v).MoveToOuterDisposeScope();                          // (B, H, N, D)
    }

    /// <summary>
    /// One new position per row (M,C) attending to the keys and values of the positions before it (M,H,t,C/H) and to
    /// itself, as the last position of a causal <see cref="Forward"/> does. <paramref name="keys"/> and
    /// <paramref name="values"/> come back with the new position appended (M,H,t+1,C/H). With at most a few positions the
    /// scores are row-wise products, not a batched matrix product per row and head.
    /// </summary>
    public Tensor Step(Tensor x, ref Tensor? keys, ref Tensor? values)
    {
        using var scope = NewDisposeScope();
        long m = x.shape[0], c = x.shape[1], hd = c / heads;
        var parts = MatmulPrecision.Linear(qkv, x, MatmulType).view(m, 3, heads, hd); // (M, 3, H, D)
        var q = parts.select(1, 0);                                                // (M, H, D)
        var k = parts.select(1, 1).unsqueeze(2);                                   // (M, H, 1, D)
        var v = parts.select(1, 2).unsqueeze(2);
        var allKeys = keys is null ? k.contiguous() : cat([keys, k], 2);
        var allValues = values is null ? v.contiguous() : cat([values, v], 2);
        Tensor o;
        if (allKeys.shape[2] == 1)
        {
            o = allValues.squeeze(2);                                              // softmax of one score is exactly 1
        }
        else
        {
            var scores = allKeys.mul(q.unsqueeze(2)).sum(-1).mul_(1.0 / Math.Sqrt(hd)); // (M, H, t+1)
            o = allValues.mul(softmax(scores, -1).unsqueeze(-1)).sum(2);          // (M, H, D)
        }
        keys = allKeys.MoveToOuterDisposeScope();
        values = allValues.MoveToOuterDisposeScope();
        return projDrop.call(MatmulPrecision.Linear(proj, o.reshape(m, c), MatmulType)).MoveToOuterDisposeScope();
    }
}

/// <summary>timm's two-layer GELU MLP (<c>fc1</c>, <c>fc2</c>) with dropout after each layer.</summary>
public sealed class Mlp : nn.Module
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly Dropout drop;

    /// <summary>The type of the layers' products, or null for the parameters' own (<see cref="MatmulPrecision"/>).</summary>
    public ScalarType? MatmulType { get; set; }

    public Mlp(int dim, int hidden, double dropout) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(dim, hidden);
        fc2 = nn.Linear(hidden, dim);
        drop = nn.Dropout(dropout);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = drop.call(F.gelu(MatmulPrecision.Linear(fc1, x, MatmulType)));
        return drop.call(MatmulPrecision.Linear(fc2, h, MatmulType)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Pre-norm transformer block (LayerNorm eps 1e-6, MLP ratio 4): bidirectional in MAR levels, causal in the pixel head.
/// </summary>
public sealed class VitBlock : nn.Module
{
    private readonly LayerNorm norm1;
    private readonly SelfAttention attn;
    private readonly LayerNorm norm2;
    private readonly Mlp mlp;

    public VitBlock(int dim, int heads, bool causal, double attnDropout, double projDropout) : base(nameof(VitBlock))
    {
        norm1 = nn.LayerNorm(dim, eps: 1e-6);
        attn = new SelfAttention(dim, heads, causal, attnDropout, projDropout);
        norm2 = nn.LayerNorm(dim, eps: 1e-6);
        mlp = new Mlp(dim, dim * 4, projDropout);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.add(attn.Forward(norm1.call(x)), Scalars.One);
        return h.add(mlp.Forward(norm2.call(h)), Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The block at one new position per row (M,C) of a causal sequence whose earlier positions' keys and values are
    /// given (see <see cref="SelfAttention.Step"/>); equals the last position of <see cref="Forward"/> over the whole sequence.
    /// </summary>
    public Tensor Step(Tensor x, ref Tensor? keys, ref Tensor? values)
    {
        using var scope = NewDisposeScope();
        var h = x.add(attn.Step(norm1.call(x), ref keys, ref values), Scalars.One);
        if (keys is not null) keys = keys.MoveToOuterDisposeScope();
        if (values is not null) values = values.MoveToOuterDisposeScope();
        return h.add(mlp.Forward(norm2.call(h)), Scalars.One).MoveToOuterDisposeScope();
    }
}
