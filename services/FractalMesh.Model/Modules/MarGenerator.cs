using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FractalMesh.Model.Modules;

/// <summary>
/// A masked bidirectional transformer level (MAR, paper §3.2): condition tokens (and a guiding-pixel token where enabled)
/// followed by one token per patch, masked patches replaced by a learned token; hands each patch down with up to five
/// conditions (its own output and its four neighbours'), as many as the level below reads.
/// </summary>
public sealed class MarGenerator : Generator
{
    [ComponentName(Name = "mask_token")]
    private readonly Parameter maskToken;
    [ComponentName(Name = "pos_embed_learned")]
    private readonly Parameter posEmbed;
    [ComponentName(Name = "patch_emb")]
    private readonly Linear patchEmb;
    [ComponentName(Name = "patch_emb_ln")]
    private readonly LayerNorm patchEmbLn;
    [ComponentName(Name = "cond_emb")]
    private readonly Linear condEmb;
    [ComponentName(Name = "pix_proj")]
    private readonly Linear? pixProj;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    [ComponentName(Name = "guiding_pixel_loss")]
    private readonly PixelHead? guidingPixelHead;

    /// <summary>Conditions read from the level above (the official <c>num_conds</c>).</summary>
    public int NumConds { get; }
    /// <summary>The guiding-pixel head, where enabled.</summary>
    public PixelHead? GuidingPixelHead => guidingPixelHead;

    public override int OutputConds { get; }

    // handDown: the conditions the level below reads (1 to 5). The reference computes all five for every patch, but a
    // pixel head or an AR level reads only the first, so only those are gathered.
    public MarGenerator(int seqLen, int patchSize, int condWidth, int width, int depth, int heads, int numConds,
        bool guidingPixel, double attnDropout, double projDropout, int handDown = 5)
        : base(nameof(MarGenerator), seqLen, patchSize, width)
    {
        if (handDown is < 1 or > 5) throw new ArgumentOutOfRangeException(nameof(handDown), handDown, "a MAR level hands down 1 to 5 conditions");
        NumConds = numConds;
        OutputConds = handDown;
        int prefix = numConds + (guidingPixel ? 1 : 0);
        maskToken = new Parameter(zeros(1, 1, width));
        posEmbed = new Parameter(zeros(1, seqLen + prefix, width));
        patchEmb = nn.Linear(3 * patchSize * patchSize, width);
        patchEmbLn = nn.LayerNorm(width, eps: 1e-6);
        condEmb = nn.Linear(condWidth, width);
        if (guidingPixel) pixProj = nn.Linear(3, width);
        blocks = new ModuleList<VitBlock>(Enumerable.Range(0, depth)
            .Select(_ => new VitBlock(width, heads, causal: false, attnDropout, projDropout)).ToArray());
        norm = nn.LayerNorm(width, eps: 1e-6);
        using (no_grad())
        {
            nn.init.normal_(maskToken, std: 0.02);
            nn.init.normal_(posEmbed, std: 0.02);
            Init.LinearsAndNorms(this);
        }
        // Created after the level's own initialization, as in the reference, so its codebooks keep their own init.
        if (guidingPixel) guidingPixelHead = new PixelHead(condWidth, 128, 3, 4, rWeight: 5.0);
        RegisterComponents();
    }

    /// <summary>
    /// The transformer's output for every patch: <paramref name="patches"/> (N,S,3p²) normalized, <paramref name="mask"/>
    /// (N,S) with 1 = masked, <paramref name="conds"/> the <see cref="NumConds"/> conditions (N,C') from above, then the
    /// guiding pixel (N,3) where enabled. Returns (N,S,C); <see cref="Conditions"/> turns it into the conditions of the
    /// patches handed down.
    /// </summary>
    public Tensor Encode(Tensor patches, Tensor mask, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        var tokens = new List<Tensor>();
        if (pixProj is not null) tokens.Add(pixProj.call(conds[NumConds]).unsqueeze(1));
        // The reference prepends conditions one by one, so they end up in reverse order.
        for (int i = NumConds - 1; i >= 0; i--) tokens.Add(condEmb.call(conds[i]).unsqueeze(1));
        int prefix = tokens.Count;
        var patchTokens = patchEmb.call(patches);                                  // (N, S, C)
        patchTokens = where(mask.to_type(ScalarType.Bool).unsqueeze(-1), maskToken, patchTokens);
        tokens.Add(patchTokens);
        var x = cat(tokens, 1).add(posEmbed, Scalars.One);                                         // (N, prefix+S, C)
        x = patchEmbLn.call(x);
        foreach (var block in blocks) x = block.Forward(x);
        x = norm.call(x);
        return x.narrow(1, prefix, SeqLen).contiguous().MoveToOuterDisposeScope();  // (N, S, C)
    }

    /// <summary>
    /// The first <paramref name="count"/> of the five conditions of the patches at flat positions
    /// <c>row·S + patch</c> of <paramref name="encoded"/> (N,S,C, from <see cref="Encode"/>): the patch's own output, then
    /// its top, right, bottom and left neighbours' (zeros beyond the border), each (n,C). Only the listed patches are
    /// gathered, instead of five (N,S,C) tensors of which most rows are thrown away.
    /// </summary>
    public Tensor[] Conditions(Tensor encoded, long[] index, int count)
    {
        if (count is < 1 or > 5) throw new ArgumentOutOfRangeException(nameof(count), count, "a patch has 1 to 5 conditions");
        using var scope = NewDisposeScope();
        var flat = encoded.reshape(-1, encoded.shape[2]);
        var device = encoded.device;
        var result = new Tensor[count];
        result[0] = flat.index_select(0, tensor(index, device: device));
        ReadOnlySpan<(int Dy, int Dx)> shifts = [(-1, 0), (0, 1), (1, 0), (0, -1)];
        for (int k = 1; k < count; k++)
        {
            var (dy, dx) = shifts[k - 1];
            var at = new long[index.Length];
            var outside = new bool[index.Length];
            for (int i = 0; i < index.Length; i++)
            {
                long patch = index[i] % SeqLen;
                long y = patch / Grid + dy, x = patch % Grid + dx;
                outside[i] = y < 0 || y >= Grid || x < 0 || x >= Grid;
                at[i] = outside[i] ? index[i] : index[i] + dy * Grid + dx;
            }
            result[k] = flat.index_select(0, tensor(at, device: device))
                .masked_fill(tensor(outside, device: device).unsqueeze(1), Scalars.Zero);
        }
        return result.Select(t => t.MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>
    /// All five conditions of every patch (the reference's output): middle, top, right, bottom, left, each (N,S,C), zeros
    /// beyond the border. Sampling and training gather only what they hand down (<see cref="Conditions"/>).
    /// </summary>
    public Tensor[] Predict(Tensor patches, Tensor mask, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        var encoded = Encode(patches, mask, conds);
        long n = encoded.shape[0], c = encoded.shape[2];
        var all = Enumerable.Range(0, (int)(n * SeqLen)).Select(i => (long)i).ToArray();
        return Conditions(encoded, all, 5).Select(t => t.reshape(n, SeqLen, c).MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>
    /// Training (masking ratio from a normal(1, 0.25) truncated to [0, 1]) or likelihood evaluation (a uniformly random
    /// number of masked patches, the same for the whole batch); random orders per image; only masked patches go down.
    /// </summary>
    public override LevelInputs Forward(Tensor images, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        var patches = Pixels.Patchify(images, PatchSize);                          // (N, S, 3p²)
        long n = patches.shape[0];
        var orders = argsort(rand(n, SeqLen, device: images.device), 1);          // (N, S) a random order per image
        Tensor numMasked;
        if (training)
        {
            numMasked = ceil(TruncatedMaskRatio(n, images.device) * SeqLen);       // (N)
        }
        else
        {
            long k = randint(1, SeqLen + 1, [1]).item<long>();
            numMasked = full(n, (float)k, device: images.device);
        }
        var rank = argsort(orders, 1);                                             // position of each patch in its order
        var mask = (rank.to_type(ScalarType.Float32) < numMasked.unsqueeze(1)).to_type(ScalarType.Float32); // (N, S)

        var inputs = new List<Tensor>(conds.Take(NumConds));
        Tensor gpLoss;
        Tensor? gpItems = null;
        if (guidingPixelHead is not null)
        {
            var guiding = images.mean([-1L, -2L]);                                 // (N, 3) mean colour
            if (training)
            {
                gpLoss = guidingPixelHead.Loss(guiding, conds);
            }
            else
            {
                gpItems = guidingPixelHead.ItemLosses(guiding, conds);            // the same rows' losses, kept apart
                gpLoss = gpItems.mean();
            }
            inputs.Add(guiding);
        }
        else
        {
            gpLoss = zeros([], device: images.device);
        }
        var encoded = Encode(patches, mask, inputs);
        var keep = mask.reshape(-1).nonzero().squeeze(1);                          // masked rows, row-major
        var next = Conditions(encoded, keep.cpu().data<long>().ToArray(), OutputConds).Select(t => t.MoveToOuterDisposeScope()).ToArray();
        var nextPatches = patches.reshape(-1, patches.shape[2]).index_select(0, keep)
            .reshape(-1, 3, PatchSize, PatchSize);
        return new LevelInputs(nextPatches.MoveToOuterDisposeScope(), next, gpLoss.MoveToOuterDisposeScope(), gpItems?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Masking ratios from normal(1.0, 0.25) truncated to [0, 1] (scipy's truncnorm(-4, 0)), by inverting the CDF
    /// so each draw costs one uniform number.
    /// </summary>
    static Tensor TruncatedMaskRatio(long n, Device device)
    {
        using var scope = NewDisposeScope();
        const double lo = 3.1671241833119857e-05, hi = 0.5; // Φ(-4), Φ(0)
        var u = rand(n, dtype: ScalarType.Float64, device: device) * (hi - lo) + lo;
        var z = special.erfinv(u * 2 - 1) * Math.Sqrt(2);
        return (z * 0.25 + 1.0).clamp(0, 1).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
