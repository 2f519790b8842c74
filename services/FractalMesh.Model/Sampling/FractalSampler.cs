using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>How to sample (the official defaults: temperature 1, filter 1e-4, linear guidance at level 0).</summary>
public sealed record SamplingOptions
{
    /// <summary>The largest guidance scale and temperature a request may ask for.</summary>
    public const float MaxCfg = 50f, MaxTemperature = 100f, DefaultFilterThreshold = 1e-4f;

    /// <summary>Guidance scale; 1 turns guidance off.</summary>
    public float Cfg { get; init; } = 1.0f;
    /// <summary>Multiplies the logits (the reference's convention: higher is sharper).</summary>
    public float Temperature { get; init; } = 1.0f;
    /// <summary>Values whose conditional probability is below this cannot be promoted by guidance.</summary>
    public float FilterThreshold { get; init; } = DefaultFilterThreshold;
    /// <summary>Level 0 guidance schedule: linear (official) or constant.</summary>
    public bool LinearCfg { get; init; } = true;
    /// <summary>
    /// Level 0 temperature schedule: constant (official) or linear, growing from 1 towards <see cref="Temperature"/> over
    /// level 0's steps exactly as linear guidance grows towards <see cref="Cfg"/> (<see cref="MarSchedule.LinearCfg"/>).
    /// A sharpening temperature favours the most concentrated value of each pixel, and a white background is one exact
    /// value: sharpened from the first step, a small model's first patches come out white and many images nearly blank;
    /// ramped, the first patches are drawn as the model predicts them and the rest sharpened.
    /// </summary>
    public bool LinearTemperature { get; init; }
    /// <summary>Iterations per level (the last, AR, level ignores its entry: it takes one step per patch).</summary>
    public required int[] NumIter { get; init; }

    /// <summary>FractalMesh's default iterations: 16 at level 0 and 8 below, capped at each level's patch count.</summary>
    public static int[] DefaultNumIter(FractalMesh.Model.Config.FractalConfig config) =>
        Enumerable.Range(0, config.Levels).Select(l => Math.Min(config.SeqLen(l), l == 0 ? 16 : 8)).ToArray();
}

/// <summary>One image to generate: its class (or -1 for unconditional), its seed, and optionally known pixels.</summary>
/// <param name="Label">Class index, or -1 to use the null embedding.</param>
/// <param name="Seed">The image's own seed; image i of a request uses request seed + i.</param>
/// <param name="KnownPixels">3×H×W bytes, planar; null when nothing is known.</param>
/// <param name="KnownMask">H×W, true where the pixel is known.</param>
/// <param name="OriginalKnownMask">When resuming: the mask the request started with (KnownPixels/KnownMask hold the partial image).</param>
public sealed record ImageRequest(int Label, long Seed, byte[]? KnownPixels = null, bool[]? KnownMask = null, bool[]? OriginalKnownMask = null);

/// <summary>
/// The whole hierarchy in one process: level samplers chained by configuration down to the pixel head, built once and
/// shared by every call. Concurrent calls share forward passes step by step at every level (each level's
/// <see cref="StepScheduler{TIn,TOut}"/>). Every image's randomness comes from its own seed, so generating it alone,
/// inside any batch or beside any other call gives the same bytes.
/// </summary>
public sealed class FractalSampler
{
    readonly FractalModel model;
    readonly LevelSampler top;
    readonly Func<IPatchSampler, int, IPatchSampler> decorate;
    readonly SchedulerOptions? scheduling;
    readonly List<(int Level, PassStatistics Statistics)> statistics = [];

    /// <param name="model">The model; sampling puts it in evaluation mode.</param>
    /// <param name="decorate">Wraps the sampler of each level below 0 (level index given), e.g. to time it or to call it remotely.</param>
    /// <param name="scheduling">How each level forms its shared forward passes.</param>
    public FractalSampler(FractalModel model, Func<IPatchSampler, int, IPatchSampler>? decorate = null, SchedulerOptions? scheduling = null)
    {
        this.model = model;
        this.decorate = decorate ?? ((sampler, _) => sampler);
        this.scheduling = scheduling;
        top = Build(model);
    }

    public int ImageSize => model.Config.ImageSizes[0];

    /// <summary>The thread the sampling runs on (every level's passes and steps).</summary>
    public ComputeThread Compute => scheduling?.Compute ?? ComputeThread.Process;

    /// <summary>Rows per forward pass of every level run in this process (the pixel head's level is the level count).</summary>
    public IReadOnlyList<(int Level, PassStatistics Statistics)> PassStatistics => statistics;

    LevelSampler Build(FractalModel level)
    {
        IPatchSampler next;
        if (level.Next is { } below) next = Build(below);
        else
        {
            var head = ForPixelHead(level, scheduling);
            statistics.Add((level.Config.Levels, head.Scheduler.Statistics));
            next = head;
        }
        var sampler = ForLevel(level, decorate(next, level.Level + 1), scheduling);
        if (sampler is MarLevelSampler mar) statistics.Insert(0, (level.Level, mar.Scheduler.Statistics));
        return sampler;
    }

    /// <summary>
    /// The sampler of one level (<paramref name="level"/> is its node in the model) handing its patches to
    /// <paramref name="next"/>, local or remote: how a service that runs only some levels builds its chain.
    /// </summary>
    public static LevelSampler ForLevel(FractalModel level, IPatchSampler next, SchedulerOptions? scheduling = null) => level.Generator switch
    {
        MarGenerator mar => new MarLevelSampler(mar, level.Level, next,
            mar.GuidingPixelHead is { } head ? new PixelHeadSampler(head, level.Level, scheduling) : null, scheduling),
        ArGenerator ar => new ArLevelSampler(ar, level.Level, next),
        _ => throw new NotSupportedException(level.Generator.GetType().Name),
    };

    /// <summary>The pixel head's sampler, below the last level of the model that <paramref name="model"/> belongs to.</summary>
    public static PixelHeadSampler ForPixelHead(FractalModel model, SchedulerOptions? scheduling = null) => new(model.PixelHead, model.Config.Levels, scheduling);

    static bool[] Original(IReadOnlyList<ImageRequest> images, int size)
    {
        var mask = new bool[images.Count * size * size];
        for (int r = 0; r < images.Count; r++) images[r].OriginalKnownMask?.CopyTo(mask, r * size * size);
        return mask;
    }

    /// <summary>
    /// Generates every image (R×3×H×W bytes, planar per image), blocking the calling thread: for the command line and tests.
    /// Servers call <see cref="GenerateAsync"/>.
    /// </summary>
    public byte[] Generate(IReadOnlyList<ImageRequest> images, SamplingOptions options, Action<LevelStep>? onStep = null, CancellationToken cancel = default, int startStep = 0) =>
        Task.Run(() => GenerateAsync(images, options, onStep is null ? null : step => { onStep(step); return ValueTask.CompletedTask; }, cancel, startStep),
            CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Generates every image (R×3×H×W bytes, planar per image). <paramref name="onStep"/> sees each level-0 step.</summary>
    /// <param name="images">One entry per image; image i of a request conventionally uses seed + i.</param>
    /// <param name="options">Guidance, temperature, filter and iterations.</param>
    /// <param name="onStep">Sees the partial images after each level-0 step (progress, previews, checkpoints); the next step waits for it.</param>
    /// <param name="cancel">Stops the work within one step of any level.</param>
    /// <param name="startStep">Level-0 step to resume from (0: a fresh start); the images then carry their partial state.</param>
    public async Task<byte[]> GenerateAsync(IReadOnlyList<ImageRequest> images, SamplingOptions options, Func<LevelStep, ValueTask>? onStep = null,
        CancellationToken cancel = default, int startStep = 0)
    {
        using var request = NewRequest(model, images, options, onStep, startStep);
        return await Compute.RunAsync(() => top.SampleAsync(request, cancel)).ConfigureAwait(false);
    }

    /// <summary>
    /// The level-0 request for <paramref name="images"/>: class conditions, guidance partners, known pixels, per-image
    /// streams; how the gateway's request reaches level 0, in process or in a level-0 service.
    /// </summary>
    public static PatchRequest NewRequest(FractalModel model, IReadOnlyList<ImageRequest> images, SamplingOptions options,
        Func<LevelStep, ValueTask>? onStep = null, int startStep = 0)
    {
        var config = model.Config;
        if (options.NumIter.Length < config.Levels) throw new ArgumentException($"num_iter needs {config.Levels} entries, got {options.NumIter.Length}");
        int size = config.ImageSizes[0], rows = images.Count;
        foreach (var img in images)
        {
            if (img.Label < -1 || img.Label >= config.ClassNum) throw new ArgumentOutOfRangeException(nameof(images), $"class {img.Label} is outside 0..{config.ClassNum - 1}");
        }
        var known = new byte[rows * 3 * size * size];
        var mask = new bool[rows * size * size];
        for (int r = 0; r < rows; r++)
        {
            if (images[r].KnownPixels is { } px) px.CopyTo(known, r * 3 * size * size);
            if (images[r].KnownMask is { } m) m.CopyTo(mask, r * size * size);
        }
        bool guided = options.Cfg != 1.0f;
        model.eval();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var device = model.parameters().First().device;
        var labels = tensor(images.Select(i => (long)Math.Max(0, i.Label)).ToArray(), device: device);
        var useNull = tensor(images.Select(i => i.Label < 0).ToArray(), device: device);
        var cond = model.ClassConditions(labels, useNull).MoveToOuterDisposeScope();
        var nullCond = guided ? model.NullConditions(rows).MoveToOuterDisposeScope() : null;
        return new PatchRequest
        {
            // As the reference: the class embedding stands for all five conditions (one tensor; disposing it twice is harmless).
            Conds = Enumerable.Repeat(cond, 5).ToArray(),
            NullConds = nullCond is null ? null : Enumerable.Repeat(nullCond, 5).ToArray(),
            Size = size,
            KnownPixels = known,
            KnownMask = mask,
            Cfg = Enumerable.Repeat(options.Cfg, rows).ToArray(),
            Temperature = Enumerable.Repeat(options.Temperature, rows).ToArray(),
            FilterThreshold = Enumerable.Repeat(options.FilterThreshold, rows).ToArray(),
            NumIter = options.NumIter,
            Streams = images.Select(i => RowStream.ForImage(i.Seed)).ToArray(),
            LinearCfg = options.LinearCfg,
            LinearTemperature = options.LinearTemperature,
            StartStep = startStep,
            OriginalKnownMask = startStep == 0 ? null : Original(images, size),
            OnStep = onStep,
        };
    }
}
