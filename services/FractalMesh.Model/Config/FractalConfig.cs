using System.Text.Json;
using System.Text.Json.Nodes;

namespace FractalMesh.Model.Config;

/// <summary>The transformer that runs one fractal level (paper §3.2).</summary>
public enum GeneratorKind
{
    /// <summary>Causal LlamaGen-style transformer, one patch per step through a KV cache.</summary>
    Ar,
    /// <summary>Bidirectional masked transformer (MAR), several patches per step.</summary>
    Mar,
}

/// <summary>
/// The shape of a fractal generative model: the arguments of the official <c>FractalGen</c> constructor.
/// Level <c>l</c> sees images of side <c>ImageSizes[l]</c> cut into patches of side <c>ImageSizes[l+1]</c>;
/// the last entries of <see cref="Widths"/>, <see cref="Blocks"/> and <see cref="Heads"/> belong to the pixel head.
/// </summary>
public sealed record FractalConfig
{
    public required int[] ImageSizes { get; init; }
    public required int[] Widths { get; init; }
    public required int[] Blocks { get; init; }
    public required int[] Heads { get; init; }
    /// <summary>One kind per level; the official presets list one more entry than levels, which is ignored.</summary>
    public required GeneratorKind[] Generators { get; init; }
    /// <summary>Conditions per patch: 1 for AR-only models, 5 (own + four neighbours) for MAR ones.</summary>
    public int NumConds { get; init; } = 1;
    /// <summary>Levels below 0 first sample the patch's mean colour (the 256×256 presets).</summary>
    public bool GuidingPixel { get; init; }
    public int ClassNum { get; init; } = 1000;
    /// <summary>Probability of replacing a label by the null embedding in training (official 0.1).</summary>
    public double LabelDropProb { get; init; } = 0.1;
    /// <summary>Attention-weight dropout of MAR blocks in training (official default 0.1).</summary>
    public double AttnDropout { get; init; } = 0.1;
    /// <summary>Projection/MLP dropout of MAR blocks and residual dropout of AR blocks in training (official 0.1).</summary>
    public double ProjDropout { get; init; } = 0.1;
    /// <summary>Weight of the red channel in the training loss (5 in the official runs; evaluation weighs channels equally).</summary>
    public double RWeight { get; init; } = 5.0;

    /// <summary>Number of generator levels (the pixel head is not counted).</summary>
    public int Levels => ImageSizes.Length - 1;

    /// <summary>
    /// How many conditions level <paramref name="level"/> reads from the level above: a MAR level its
    /// <see cref="NumConds"/> (its patch's output and neighbours), an AR level and the pixel head (level
    /// <see cref="Levels"/>) one.
    /// </summary>
    public int ConditionsRead(int level) => level < Levels && Generators[level] == GeneratorKind.Mar ? NumConds : 1;

    /// <summary>Patches per side at level <paramref name="level"/>.</summary>
    public int Grid(int level) => ImageSizes[level] / ImageSizes[level + 1];

    /// <summary>Patches per image at level <paramref name="level"/>.</summary>
    public int SeqLen(int level) => Grid(level) * Grid(level);

    /// <summary>Throws with the offending field when the shape is inconsistent.</summary>
    public FractalConfig Validate()
    {
        if (ImageSizes.Length < 2) throw new ArgumentException("img_size_list needs at least two sizes (image and pixel)");
        if (ImageSizes[^1] != 1) throw new ArgumentException("img_size_list must end with 1 (a pixel)");
        int n = ImageSizes.Length;
        if (Widths.Length != n) throw new ArgumentException($"embed_dim_list must have {n} entries (one per size), has {Widths.Length}");
        if (Blocks.Length != n) throw new ArgumentException($"num_blocks_list must have {n} entries, has {Blocks.Length}");
        if (Heads.Length != n) throw new ArgumentException($"num_heads_list must have {n} entries, has {Heads.Length}");
        if (Generators.Length < Levels) throw new ArgumentException($"generator_type_list must have at least {Levels} entries");
        for (int l = 0; l < Levels; l++)
        {
            if (ImageSizes[l] % ImageSizes[l + 1] != 0) throw new ArgumentException($"img_size_list[{l}]={ImageSizes[l]} is not a multiple of img_size_list[{l + 1}]={ImageSizes[l + 1]}");
        }
        for (int l = 0; l < n; l++)
        {
            if (Widths[l] % Heads[l] != 0) throw new ArgumentException($"embed_dim_list[{l}]={Widths[l]} is not divisible by num_heads_list[{l}]={Heads[l]}");
        }
        if (NumConds < 1 || NumConds > 5) throw new ArgumentException("num_conds must be between 1 and 5");
        if (ClassNum < 1) throw new ArgumentException("class_num must be positive");
        return this;
    }

    /// <summary>Reads the official constructor arguments (<c>config.json</c> of a reference case).</summary>
    public static FractalConfig FromJson(string json)
    {
        var o = JsonNode.Parse(json)?.AsObject() ?? throw new ArgumentException("config is not a JSON object");
        int[] Ints(string key) => o[key]?.AsArray().Select(v => v!.GetValue<int>()).ToArray()
            ?? throw new ArgumentException($"config lacks '{key}'");
        var config = new FractalConfig
        {
            ImageSizes = Ints("img_size_list"),
            Widths = Ints("embed_dim_list"),
            Blocks = Ints("num_blocks_list"),
            Heads = Ints("num_heads_list"),
            Generators = (o["generator_type_list"]?.AsArray() ?? throw new ArgumentException("config lacks 'generator_type_list'"))
                .Select(v => ParseKind(v!.GetValue<string>())).ToArray(),
            NumConds = o["num_conds"]?.GetValue<int>() ?? 1,
            GuidingPixel = o["guiding_pixel"]?.GetValue<bool>() ?? false,
            ClassNum = o["class_num"]?.GetValue<int>() ?? 1000,
            LabelDropProb = o["label_drop_prob"]?.GetValue<double>() ?? 0.1,
            AttnDropout = o["attn_dropout"]?.GetValue<double>() ?? 0.1,
            ProjDropout = o["proj_dropout"]?.GetValue<double>() ?? 0.1,
            RWeight = o["r_weight"]?.GetValue<double>() ?? 5.0,
        };
        return config.Validate();
    }

    /// <summary>Writes the same keys <see cref="FromJson"/> reads, in a stable order.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["img_size_list"] = new JsonArray(ImageSizes.Select(v => (JsonNode)v).ToArray()),
            ["embed_dim_list"] = new JsonArray(Widths.Select(v => (JsonNode)v).ToArray()),
            ["num_blocks_list"] = new JsonArray(Blocks.Select(v => (JsonNode)v).ToArray()),
            ["num_heads_list"] = new JsonArray(Heads.Select(v => (JsonNode)v).ToArray()),
            ["generator_type_list"] = new JsonArray(Generators.Select(g => (JsonNode)(g == GeneratorKind.Ar ? "ar" : "mar")).ToArray()),
            ["num_conds"] = NumConds,
            ["guiding_pixel"] = GuidingPixel,
            ["class_num"] = ClassNum,
            ["label_drop_prob"] = LabelDropProb,
            ["attn_dropout"] = AttnDropout,
            ["proj_dropout"] = ProjDropout,
            ["r_weight"] = RWeight,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    static GeneratorKind ParseKind(string s) => s.ToLowerInvariant() switch
    {
        "ar" => GeneratorKind.Ar,
        "mar" => GeneratorKind.Mar,
        _ => throw new ArgumentException($"generator_type_list: unknown generator '{s}' (ar or mar)"),
    };

    /// <summary>Value equality over the arrays too (records compare arrays by reference).</summary>
    public bool SameShape(FractalConfig other) => ToJson() == other.ToJson();
}
