using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FractalMesh.Model.Modules;

/// <summary>
/// A causal autoregressive level (paper §3.2, LlamaGen-style blocks with 2-D rotary embedding) over
/// <c>[condition, patch_1 … patch_S]</c> in raster order; the output at position <c>i</c> conditions patch <c>i+1</c>.
/// </summary>
public sealed class ArGenerator : Generator
{
    [ComponentName(Name = "pos_embed_learned")]
    private readonly Parameter posEmbed;
    [ComponentName(Name = "patch_emb")]
    private readonly Linear patchEmb;
    [ComponentName(Name = "patch_emb_ln")]
    private readonly LayerNorm patchEmbLn;
    [ComponentName(Name = "cond_emb")]
    private readonly Linear condEmb;
    private readonly ModuleList<LlamaBlock> blocks;
    private readonly LayerNorm norm;
    private readonly RotaryTable rope;

    public override int OutputConds => 1;

    public ArGenerator(int seqLen, int patchSize, int condWidth, int width, int depth, int heads, double dropout)
        : base(nameof(ArGenerator), seqLen, patchSize, width)
    {
        posEmbed = new Parameter(zeros(1, seqLen + 1, width));
        patchEmb = nn.Linear(3 * patchSize * patchSize, width);
        patchEmbLn = nn.LayerNorm(width, eps: 1e-6);
        condEmb = nn.Linear(condWidth, width);
        blocks = new ModuleList<LlamaBlock>(Enumerable.Range(0, depth).Select(_ => new LlamaBlock(width, heads, dropout)).ToArray());
        norm = nn.LayerNorm(width, eps: 1e-6);
        rope = new RotaryTable(Grid, width / heads);
        rope.For(posEmbed.device); // built with the weights so that a forward pass allocates nothing long-lived
        using (no_grad())
        {
            nn.init.normal_(posEmbed, std: 0.02);
            Init.LinearsAndNorms(this);
        }
        RegisterComponents();
    }

    /// <summary>Teacher-forced conditions: patches (N,S,3p²) and the condition <c>conds[0]</c> (N,C') → (N,S,C).</summary>
    public Tensor Predict(Tensor patches, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        var x = cat([condEmb.call(conds[0]).unsqueeze(1), patchEmb.call(patches)], 1); // (N, 1+S, C)
        x = patchEmbLn.call(x.add(posEmbed, Scalars.One));
        var table = rope.For(x.device);
        for (int i = 0; i < blocks.Count; i++) x = blocks[i].Forward(x, table, null, i);
        x = norm.call(x);
        return x.narrow(1, 0, SeqLen).MoveToOuterDisposeScope();                    // drop the last position
    }

    /// <summary>
    /// One sampling step through <paramref name="cache"/>: at step 0 the token is the condition, at step t the patch
    /// sampled at step t-1 (<paramref name="previousPatch"/>, (N,3p²)). Returns the condition (N,C) of patch <paramref name="step"/>.
    /// </summary>
    public Tensor Step(Tensor? previousPatch, Tensor cond, int step, KvCache cache)
    {
        using var scope = NewDisposeScope();
        if (cache.Length != step) throw new InvalidOperationException($"KV cache holds {cache.Length} positions, step is {step}");
        var token = step == 0 ? condEmb.call(cond) : patchEmb.call(previousPatch!);      // (N, C)
        var x = patchEmbLn.call(token.add(posEmbed.select(1, step), Scalars.One)).unsqueeze(1);         // (N, 1, C)
        var table = rope.For(x.device).narrow(0, step, 1);
        for (int i = 0; i < blocks.Count; i++) x = blocks[i].Forward(x, table, cache, i);
        return norm.call(x).squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>A KV cache sized for this level.</summary>
    public KvCache NewCache() => new(blocks.Count);

    public override LevelInputs Forward(Tensor images, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        var patches = Pixels.Patchify(images, PatchSize);                                // (N, S, 3p²)
        var middle = Predict(patches, conds);
        var next = middle.reshape(-1, middle.shape[2]);
        var nextPatches = patches.reshape(-1, 3, PatchSize, PatchSize);
        return new LevelInputs(nextPatches.MoveToOuterDisposeScope(), [next.MoveToOuterDisposeScope()],
            zeros([], device: images.device).MoveToOuterDisposeScope());
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) rope.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>The rotary table, kept out of the state dict (the reference does not save it) and rebuilt per device.</summary>
    sealed class RotaryTable(int grid, int headDim) : IDisposable
    {
        private Tensor? table;

        public Tensor For(Device device)
        {
            if (table is null || table.device_type != device.type || table.device_index != device.index)
            {
                table?.Dispose();
                var built = Rotary2D.Table(grid, headDim).DetachFromDisposeScope();
                if (built.device_type != device.type || built.device_index != device.index)
                {
                    var moved = built.to(device).DetachFromDisposeScope();
                    built.Dispose();
                    built = moved;
                }
                table = built;
            }
            return table;
        }

        public void Dispose() => table?.Dispose();
    }
}
