using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FractalMesh.Model.Modules;

/// <summary>The output bias of one channel's logits (<c>r_mlm.bias</c> etc.); the weights are that channel's codebook.</summary>
public sealed class CodebookLogits : nn.Module
{
    private readonly Parameter bias;

    public CodebookLogits(int vocab) : base(nameof(CodebookLogits))
    {
        bias = new Parameter(zeros(1, vocab));
        RegisterComponents();
    }

    /// <summary>The type of the product, or null for the parameters' own (<see cref="MatmulPrecision"/>).</summary>
    public ScalarType? MatmulType { get; set; }

    /// <summary>(M,W) hidden states × codebook (256,W)ᵀ + bias → (M,256) logits.</summary>
    public Tensor Forward(Tensor hidden, Tensor codebook)
    {
        using var scope = NewDisposeScope();
        return MatmulPrecision.MatmulTransposed(hidden, codebook, MatmulType, training).add(bias, Scalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The pixel head (official <c>PixelLoss</c>, docs/ARCHITECTURE.md, The model): a 3-step causal transformer over
/// <c>[condition, R, G, B]</c> with one 256-entry codebook per channel. Also used, small, as a level's guiding-pixel head.
/// </summary>
public sealed class PixelHead : NextLevel
{
    [ComponentName(Name = "cond_proj")]
    private readonly Linear condProj;
    [ComponentName(Name = "r_codebook")]
    private readonly Embedding rCodebook;
    [ComponentName(Name = "g_codebook")]
    private readonly Embedding gCodebook;
    [ComponentName(Name = "b_codebook")]
    private readonly Embedding bCodebook;
    private readonly LayerNorm ln;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    [ComponentName(Name = "r_mlm")]
    private readonly CodebookLogits rLogits;
    [ComponentName(Name = "g_mlm")]
    private readonly CodebookLogits gLogits;
    [ComponentName(Name = "b_mlm")]
    private readonly CodebookLogits bLogits;

    /// <summary>Training weight of red relative to green and blue (evaluation weighs them equally).</summary>
    public double RWeight { get; }

    /// <summary>Width of the head's own transformer.</summary>
    public int Width { get; }

    /// <summary>Width of the conditions this head reads.</summary>
    public int CondWidth { get; }

    public PixelHead(int condWidth, int width, int depth, int heads, double rWeight) : base(nameof(PixelHead))
    {
        RWeight = rWeight;
        CondWidth = condWidth;
        Width = width;
        condProj = nn.Linear(condWidth, width);
        rCodebook = nn.Embedding(256, width);
        gCodebook = nn.Embedding(256, width);
        bCodebook = nn.Embedding(256, width);
        ln = nn.LayerNorm(width, eps: 1e-6);
        blocks = new ModuleList<VitBlock>(Enumerable.Range(0, depth).Select(_ => new VitBlock(width, heads, causal: true, 0, 0)).ToArray());
        norm = nn.LayerNorm(width, eps: 1e-6);
        rLogits = new CodebookLogits(256);
        gLogits = new CodebookLogits(256);
        bLogits = new CodebookLogits(256);
        RegisterComponents();
        Initialize();
    }

    void Initialize()
    {
        using var _ = no_grad();
        foreach (var cb in new[] { rCodebook, gCodebook, bCodebook }) nn.init.normal_(cb.weight!, std: 0.02);
        Init.LinearsAndNorms(this);
    }

    /// <summary>
    /// Teacher-forced logits: byte ids (M,3) and conditions (M,C) → (M,3,256). Row <c>m</c>, channel <c>i</c> sees only
    /// the condition and channels before <c>i</c>, so sampling can call this with unknown channels set to anything.
    /// The reference also runs the blue value's own position through the blocks; with causal attention nothing reads it,
    /// so it is left out (three positions instead of four, the same logits).
    /// </summary>
    public Tensor Logits(Tensor ids, Tensor cond)
    {
        using var scope = NewDisposeScope();
        var x = cat([
            condProj.call(cond).unsqueeze(1),                       // (M, 1, W)
            rCodebook.call(ids.narrow(1, 0, 1)),                    // (M, 1, W)
            gCodebook.call(ids.narrow(1, 1, 1)),
        ], 1);                                                      // (M, 3, W)
        x = ln.call(x);
        foreach (var block in blocks) x = block.Forward(x);
        x = norm.call(x);
        var r = rLogits.Forward(x.select(1, 0), rCodebook.weight!);
        var g = gLogits.Forward(x.select(1, 1), gCodebook.weight!);
        var b = bLogits.Forward(x.select(1, 2), bCodebook.weight!);
        return stack([r, g, b], 1).MoveToOuterDisposeScope();       // (M, 3, 256)
    }

    /// <summary>Number of transformer blocks.</summary>
    public int Depth => blocks.Count;

    /// <summary>
    /// One sampling step: the logits (M,256) of channel <paramref name="channel"/> from the position it reads, given the
    /// keys and values the earlier positions left (<paramref name="past"/>, null for channel 0). The input is the condition
    /// (M,C) for channel 0 and the byte ids (M) of the channel before for channels 1 and 2. The attention is causal, so the
    /// logits equal <see cref="Logits"/>'s for that channel, while each of the three steps runs one position through the
    /// blocks instead of recomputing the ones before it. <paramref name="next"/> holds the keys and values of every
    /// position so far (the caller disposes it).
    /// </summary>
    public Tensor StepLogits(int channel, Tensor input, PixelHeadCache? past, out PixelHeadCache next)
    {
        if ((channel == 0) != (past is null))
            throw new ArgumentException($"channel {channel} {(channel == 0 ? "starts a pixel and takes no cache" : "needs the cache of the channels before it")}", nameof(past));
        using var scope = NewDisposeScope();
        var token = channel switch
        {
            0 => condProj.call(input),
            1 => rCodebook.call(input),
            2 => gCodebook.call(input),
            _ => throw new ArgumentOutOfRangeException(nameof(channel), channel, "a pixel has channels 0, 1 and 2"),
        };                                                                                       // (M, W)
        var x = ln.call(token);
        var keys = new Tensor[blocks.Count];
        var values = new Tensor[blocks.Count];
        for (int i = 0; i < blocks.Count; i++)
        {
            Tensor? k = past?.Keys[i], v = past?.Values[i];
            x = blocks[i].Step(x, ref k, ref v);
            keys[i] = k!;
            values[i] = v!;
        }
        var h = norm.call(x);
        var logits = channel switch
        {
            0 => rLogits.Forward(h, rCodebook.weight!),
            1 => gLogits.Forward(h, gCodebook.weight!),
            _ => bLogits.Forward(h, bCodebook.weight!),
        };
        next = new PixelHeadCache(keys.Select(k => k.MoveToOuterDisposeScope()).ToArray(), values.Select(v => v.MoveToOuterDisposeScope()).ToArray());
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Cross-entropy of normalized pixels (M,3) (or (M,3,1,1)) under conditions <c>conds[0]</c>: red weighted by
    /// <see cref="RWeight"/> in training, channels equal in evaluation; mean over rows, in nats.
    /// </summary>
    public override Tensor Loss(Tensor pixels, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        // The reference adds 1e-2 noise before rounding to break exact .5 ties; normalized byte values sit within
        // 1e-5 of an integer after denormalizing, so plain rounding gives the same ids without spending random numbers.
        var ids = Pixels.ToByteIds(pixels.reshape(pixels.shape[0], 3));
        var cond = conds[0];
        long rows = ids.shape[0];
        if (training && EagerBackwardRows > 0 && rows > EagerBackwardRows && is_grad_enabled() && cond.requires_grad)
            return EagerBackwardLoss(ids, cond).MoveToOuterDisposeScope();
        return RowLosses(ids, cond).mean().MoveToOuterDisposeScope();
    }

    /// <summary>Evaluation: each row's loss (M), channels weighted equally; <see cref="Loss"/> is their mean.</summary>
    public override Tensor ItemLosses(Tensor pixels, IReadOnlyList<Tensor> conds)
    {
        if (training) throw new InvalidOperationException("per-row losses are an evaluation measure; call eval() first");
        using var scope = NewDisposeScope();
        var ids = Pixels.ToByteIds(pixels.reshape(pixels.shape[0], 3));
        return RowLosses(ids, conds[0]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rows at a time in training's backward, or 0 for the whole batch at once. When set, <see cref="Loss"/> in training
    /// runs forward and backward through this head in chunks of that many rows as soon as it is called, so each chunk's
    /// activations are still in the caches when its backward reads them (the head's work is many narrow rows: it is
    /// bound by memory traffic, not arithmetic). The parameters' gradients are then already accumulated, and the returned
    /// loss (the same value) carries only the gradient of the conditions back to the level above. Valid only when the
    /// caller calls <c>backward</c> once on a total in which this loss enters with weight 1, as the trainer does
    /// (<see cref="FractalModel.UseEagerHeadBackward"/>).
    /// </summary>
    public long EagerBackwardRows { get; set; }

    /// <summary>Per-row loss (M): the channels' cross-entropy, red weighted by <see cref="RWeight"/> in training.</summary>
    Tensor RowLosses(Tensor ids, Tensor cond)
    {
        using var scope = NewDisposeScope();
        var logits = Logits(ids, cond);
        var ce = stack([
            F.cross_entropy(logits.select(1, 0), ids.select(1, 0), reduction: nn.Reduction.None),
            F.cross_entropy(logits.select(1, 1), ids.select(1, 1), reduction: nn.Reduction.None),
            F.cross_entropy(logits.select(1, 2), ids.select(1, 2), reduction: nn.Reduction.None),
        ], 1);                                                      // (M, 3)
        double rw = training ? RWeight : 1.0;
        var weights = tensor(new[] { (float)rw, 1f, 1f }, device: ce.device);
        return ((ce * weights).sum(1) / (rw + 2)).MoveToOuterDisposeScope();
    }

    Tensor EagerBackwardLoss(Tensor ids, Tensor cond)
    {
        using var scope = NewDisposeScope();
        long rows = ids.shape[0];
        var input = cond.detach().requires_grad_(true);   // the chunks' backward stops here and accumulates input.grad
        var total = zeros([], device: cond.device);
        for (long start = 0; start < rows; start += EagerBackwardRows)
        {
            using var chunkScope = NewDisposeScope();
            long length = Math.Min(EagerBackwardRows, rows - start);
            var loss = RowLosses(ids.narrow(0, start, length), input.narrow(0, start, length)).sum().div(rows);
            loss.backward();
            using (no_grad()) total.add_(loss);
        }
        // Value: the loss; gradient: input.grad into the conditions (the surrogate minus its own detached copy is 0).
        var surrogate = cond.mul(input.grad!).sum();
        return surrogate.sub(surrogate.detach()).add(total).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What a row's earlier positions left in each block of a <see cref="PixelHead"/>: keys and values (M,H,t,D) per block,
/// handed from one channel step to the next. Owns its tensors.
/// </summary>
public sealed class PixelHeadCache : IDisposable
{
    internal PixelHeadCache(Tensor[] keys, Tensor[] values)
    {
        Keys = keys;
        Values = values;
    }

    internal Tensor[] Keys { get; }
    internal Tensor[] Values { get; }

    /// <summary>Number of rows.</summary>
    public long Rows => Keys[0].shape[0];

    /// <summary>Rows <paramref name="start"/> to <paramref name="start"/>+<paramref name="length"/>, as views.</summary>
    public PixelHeadCache Narrow(long start, long length) =>
        new(Keys.Select(k => k.narrow(0, start, length)).ToArray(), Values.Select(v => v.narrow(0, start, length)).ToArray());

    /// <summary>The rows of several caches one after another (copies).</summary>
    public static PixelHeadCache Concat(IReadOnlyList<PixelHeadCache> parts)
    {
        if (parts.Count == 1) return parts[0].Narrow(0, parts[0].Rows);
        int blocks = parts[0].Keys.Length;
        return new(Enumerable.Range(0, blocks).Select(b => cat(parts.Select(p => p.Keys[b]).ToList(), 0)).ToArray(),
            Enumerable.Range(0, blocks).Select(b => cat(parts.Select(p => p.Values[b]).ToList(), 0)).ToArray());
    }

    /// <summary>Moves every tensor to the dispose scope outside the current one (see TorchSharp's dispose scopes).</summary>
    public PixelHeadCache MoveToOuterDisposeScope()
    {
        foreach (var t in Keys) t.MoveToOuterDisposeScope();
        foreach (var t in Values) t.MoveToOuterDisposeScope();
        return this;
    }

    public void Dispose()
    {
        foreach (var t in Keys) t.Dispose();
        foreach (var t in Values) t.Dispose();
    }
}
