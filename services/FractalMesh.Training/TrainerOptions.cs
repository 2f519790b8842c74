namespace FractalMesh.Training;

/// <summary>The official training recipe (main_fractalgen.py) with values sized for a CPU run.</summary>
public sealed record TrainerOptions
{
    /// <summary>The train split file written by <c>fractalmesh data</c>.</summary>
    public required string TrainSplit { get; init; }
    /// <summary>Run folder: checkpoint, optimizer state, log.csv, sample sheets.</summary>
    public required string OutputDir { get; init; }
    /// <summary>Configuration used when the run starts fresh; overrides <see cref="Preset"/> when set.</summary>
    public FractalMesh.Model.Config.FractalConfig? Config { get; init; }
    /// <summary>
    /// Warm start: a FractalMesh checkpoint whose configuration and weights a fresh run starts from (with a new optimizer and
    /// schedule); ignored on resume. <see cref="Dropout"/> still applies.
    /// </summary>
    public string? InitFrom { get; init; }
    /// <summary>Preset used when the run starts fresh.</summary>
    public string Preset { get; init; } = "fractalmar_tiny_in32";
    public int BatchSize { get; init; } = 32;
    /// <summary>Total optimizer steps of the run (the cosine schedule ends here).</summary>
    public int TotalSteps { get; init; } = 20_000;
    /// <summary>Linear warm-up steps before the cosine decay.</summary>
    public int WarmupSteps { get; init; } = 500;
    /// <summary>Peak learning rate. The official base rate is 5e-5 per 256 images at batch 1024+; small CPU models train faster higher.</summary>
    public double LearningRate { get; init; } = 1e-3;
    public double MinLearningRate { get; init; } = 1e-5;
    /// <summary>AdamW weight decay on weights (not biases or norms), as the official recipe.</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>Gradient clipping by global norm (official 3.0).</summary>
    public double GradClip { get; init; } = 3.0;
    public long Seed { get; init; } = 0;
    /// <summary>Wall-clock minutes between checkpoints.</summary>
    public double CheckpointMinutes { get; init; } = 5;
    /// <summary>Stop after this many steps in this invocation (resume continues); null = until <see cref="TotalSteps"/>.</summary>
    public int? MaxStepsThisRun { get; init; }
    /// <summary>Dropout overrides; null keeps the preset's (official 0.1).</summary>
    public double? Dropout { get; init; }
    /// <summary>
    /// Weight of the red channel in the pixel heads' training loss (green and blue weigh 1); null keeps the configuration's
    /// (official 5). Like <see cref="Dropout"/>, it applies when a run starts (fresh or warm) and is stored in the checkpoint.
    /// 1 trains on exactly what the likelihood measures (channels equal).
    /// </summary>
    public double? RedWeight { get; init; }
    /// <summary>Random horizontal flips of the training images (official: on). Give every resume of a run the same value.</summary>
    public bool Flips { get; init; } = true;
    /// <summary>
    /// How far each epoch evens out the classes (0 to 1): a class's share of the draws is proportional to its image count to
    /// the power 1 − ClassBalance (0: the data as it is, the official recipe; 1: every class alike). Give every resume of a
    /// run the same value.
    /// </summary>
    public double ClassBalance { get; init; }
    /// <summary>Where the model trains (cpu, cuda, cuda:N).</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// Rows per chunk of the pixel heads' eager forward and backward (<c>FractalModel.UseEagerHeadBackward</c>); 0 off;
    /// null: 4096 on a CPU (a chunk's activations stay in the caches), off on other devices (chunks only add kernel launches).
    /// </summary>
    public long? HeadChunkRows { get; init; }
    /// <summary>
    /// Mixed precision: the transformer blocks' linear layers and the pixel heads' logits multiply in bfloat16 while the
    /// parameters, the optimizer, norms, activations between layers and the loss stay in float32
    /// (<c>FractalModel.UseMatmulType</c>; in training mode only, so sample sheets stay float32). Off by default (the
    /// reference's function in float32). Not part of the run's state: a resume may turn it on or off.
    /// </summary>
    public bool BFloat16Matmuls { get; init; }
    /// <summary>Intra-op threads; 0 leaves libtorch's default.</summary>
    public int Threads { get; init; }
}
