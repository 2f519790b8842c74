using FractalMesh.Model.Config;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FractalMesh.Model.Modules;

/// <summary>
/// One fractal level and, recursively, everything below it (official <c>FractalGen</c>, paper §3). Level 0 also owns the
/// class embedding and the learned null embedding <c>fake_latent</c> used for guidance and unconditional likelihood.
/// The state-dict names equal the official checkpoint's key for key.
/// </summary>
public sealed class FractalModel : NextLevel
{
    [ComponentName(Name = "fake_latent")]
    private readonly Parameter? nullEmbedding;
    [ComponentName(Name = "class_emb")]
    private readonly Embedding? classEmbedding;
    private readonly Generator generator;
    [ComponentName(Name = "next_fractal")]
    private readonly NextLevel nextLevel;

    public FractalConfig Config { get; }
    /// <summary>0 for the coarsest level.</summary>
    public int Level { get; }
    public Generator Generator => generator;
    /// <summary>The level below, or null when the next is the pixel head.</summary>
    public FractalModel? Next => nextLevel as FractalModel;
    /// <summary>The pixel head at the bottom of the hierarchy.</summary>
    public PixelHead PixelHead => nextLevel as PixelHead ?? Next!.PixelHead;

    /// <summary>
    /// Makes every pixel head of the model (the last level's and the guiding-pixel heads) run training's forward and
    /// backward in chunks of <paramref name="rows"/> rows as soon as its loss is computed (<see cref="PixelHead.EagerBackwardRows"/>;
    /// 0 turns it off). For a training step that calls <c>backward</c> once on <see cref="Loss(Tensor, Tensor)"/>.
    /// </summary>
    public void UseEagerHeadBackward(long rows)
    {
        foreach (var module in modules())
            if (module is PixelHead head) head.EagerBackwardRows = rows;
    }

    /// <summary>
    /// In training mode, makes the transformer blocks' linear layers and the pixel heads' logits multiply in bfloat16
    /// (mixed precision, <see cref="MatmulPrecision"/>); null (the default) keeps the parameters' own type, the reference's
    /// function. Parameters, norms, activations between layers and the loss keep their type, and evaluation and sampling
    /// (eval mode) stay in it whatever is set here. Float32 is accepted as the same as null.
    /// </summary>
    public void UseMatmulType(ScalarType? type)
    {
        if (type is ScalarType t && t != ScalarType.BFloat16 && t != ScalarType.Float32)
            throw new ArgumentException($"matrix products in {t} are not supported (bfloat16, which needs no loss scaling, or float32)", nameof(type));
        if (type == ScalarType.Float32) type = null;   // the parameters' own type: the switch off
        foreach (var module in modules())
        {
            switch (module)
            {
                case SelfAttention attention: attention.MatmulType = type; break;
                case Mlp mlp: mlp.MatmulType = type; break;
                case CodebookLogits logits: logits.MatmulType = type; break;
                case RotaryAttention attention: attention.MatmulType = type; break;
                case SwiGluFeedForward feedForward: feedForward.MatmulType = type; break;
            }
        }
    }

    /// <summary>Builds the whole model from <paramref name="config"/> with the reference's random initialization.</summary>
    public FractalModel(FractalConfig config) : this(config.Validate(), 0) { }

    /// <summary>
    /// The levels from <paramref name="level"/> down to the pixel head, and nothing above: what a service that serves
    /// only lower levels holds. Its state-dict keys are the whole model's without <see cref="KeyPrefix"/>.
    /// </summary>
    public static FractalModel FromLevel(FractalConfig config, int level) =>
        level == 0 ? new FractalModel(config) : new FractalModel(config.Validate(), Math.Min(level, config.Levels - 1));

    /// <summary>The prefix of level <paramref name="level"/>'s keys in the whole model's state dict.</summary>
    public static string KeyPrefix(int level) => string.Concat(Enumerable.Repeat("next_fractal.", level));

    // Every process that builds a model does tensor work: tune the allocator for it first.
    static FractalModel() => NativeAllocator.Tune();

    FractalModel(FractalConfig config, int level) : base(nameof(FractalModel))
    {
        Config = config;
        Level = level;
        int condWidth = level > 0 ? config.Widths[level - 1] : config.Widths[0];
        if (level == 0)
        {
            classEmbedding = nn.Embedding(config.ClassNum, config.Widths[0]);
            nullEmbedding = new Parameter(zeros(1, config.Widths[0]));
            using var _ = no_grad();
            nn.init.normal_(classEmbedding.weight!, std: 0.02);
            nn.init.normal_(nullEmbedding, std: 0.02);
        }
        int seqLen = config.SeqLen(level), patch = config.ImageSizes[level + 1];
        generator = config.Generators[level] switch
        {
            GeneratorKind.Mar => new MarGenerator(seqLen, patch, condWidth, config.Widths[level], config.Blocks[level],
                config.Heads[level], config.NumConds, config.GuidingPixel && level > 0, config.AttnDropout, config.ProjDropout,
                config.ConditionsRead(level + 1)),
            _ => new ArGenerator(seqLen, patch, condWidth, config.Widths[level], config.Blocks[level], config.Heads[level],
                config.ProjDropout),
        };
        nextLevel = level < config.Levels - 1
            ? new FractalModel(config, level + 1)
            : new PixelHead(config.Widths[level], config.Widths[level + 1], config.Blocks[level + 1], config.Heads[level + 1], config.RWeight);
        RegisterComponents();
    }

    /// <summary>Class embeddings (B,C) of <paramref name="labels"/> (B); where <paramref name="useNull"/> is true, the null embedding.</summary>
    public Tensor ClassConditions(Tensor labels, Tensor? useNull = null)
    {
        if (classEmbedding is null || nullEmbedding is null) throw new InvalidOperationException("only level 0 has class embeddings");
        using var scope = NewDisposeScope();
        var cond = classEmbedding.call(labels);
        if (useNull is not null) cond = where(useNull.to_type(ScalarType.Bool).unsqueeze(1), nullEmbedding, cond);
        return cond.MoveToOuterDisposeScope();
    }

    /// <summary>The learned null embedding repeated <paramref name="n"/> times (unconditional rows).</summary>
    public Tensor NullConditions(long n)
    {
        if (nullEmbedding is null) throw new InvalidOperationException("only level 0 has the null embedding");
        return nullEmbedding.expand(n, nullEmbedding.shape[1]).clone();
    }

    /// <summary>
    /// Loss of normalized images (B,3,H,W) with class <paramref name="labels"/> (B), in nats per dimension. In training a
    /// label becomes the null embedding with probability <see cref="FractalConfig.LabelDropProb"/>; in evaluation every
    /// row is unconditional (the reference's likelihood protocol).
    /// </summary>
    public Tensor Loss(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        return Loss(images, TopConditions(images, labels)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Evaluation: each image's loss (B), nats per dimension, unconditional as in <see cref="Loss(Tensor, Tensor)"/>, whose
    /// value under the same random state is their mean.
    /// </summary>
    public Tensor ItemLosses(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        return ItemLosses(images, TopConditions(images, labels)).MoveToOuterDisposeScope();
    }

    /// <summary>Level 0's five conditions: the class embedding, or the null one for dropped labels (training) and always (evaluation).</summary>
    Tensor[] TopConditions(Tensor images, Tensor labels)
    {
        var useNull = training
            ? rand(labels.shape[0], device: images.device) < Config.LabelDropProb
            : ones(labels.shape[0], dtype: ScalarType.Bool, device: images.device);
        var cond = ClassConditions(labels, useNull);
        return Enumerable.Repeat(cond, 5).ToArray();
    }

    /// <summary>Loss of this level and everything below under the given conditions.</summary>
    public override Tensor Loss(Tensor images, IReadOnlyList<Tensor> conds)
    {
        using var scope = NewDisposeScope();
        var inputs = generator.Forward(images, conds);
        var loss = nextLevel.Loss(inputs.Patches, inputs.Conds);
        return (loss + inputs.GuidingPixelLoss).MoveToOuterDisposeScope();
    }

    public override Tensor ItemLosses(Tensor images, IReadOnlyList<Tensor> conds)
    {
        if (training)
            throw new InvalidOperationException("per-image losses are an evaluation measure (in training a MAR level masks a different number of patches in each image); call eval() first");
        using var scope = NewDisposeScope();
        long n = images.shape[0];
        var inputs = generator.Forward(images, conds);
        // The next level's rows come image by image, the same number from each (all patches, or the same k masked ones).
        var below = nextLevel.ItemLosses(inputs.Patches, inputs.Conds).reshape(n, -1).mean([1L]);
        var items = inputs.GuidingPixelItemLosses is { } guiding ? below + guiding : below;
        return items.MoveToOuterDisposeScope();
    }

}
