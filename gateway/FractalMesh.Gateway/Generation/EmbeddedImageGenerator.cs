using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// Embedded mode (DESIGN.md §3): the whole hierarchy in this process through <see cref="FractalSampler"/>. The model
/// is loaded once when the gateway starts; each call gets its own sampler, so concurrent calls share only the weights.
/// </summary>
public sealed class EmbeddedImageGenerator : IImageGenerator, IDisposable
{
    readonly FractalModel model;
    readonly ILogger<EmbeddedImageGenerator> logger;

    public EmbeddedImageGenerator(IOptions<GatewayOptions> options, ILogger<EmbeddedImageGenerator> logger)
    {
        this.logger = logger;
        var o = options.Value;
        var device = new TorchSharp.torch.Device(o.Device);
        if (device.type == TorchSharp.DeviceType.CUDA && !TorchSharp.torch.cuda.is_available())
            throw new OptionsValidationException(GatewayOptions.Section, typeof(GatewayOptions),
                [$"Gateway:Device {o.Device}: CUDA is not available (build with -p:LibTorchBackend=cuda on a machine with the CUDA packages)"]);
        model = ModelCheckpoint.Open(o.ModelPath, o.Preset, device);
        var config = model.Config;
        var seqLens = Enumerable.Range(0, config.Levels).Select(config.SeqLen).ToArray();
        // The command line's defaults: up to 16 MAR steps at level 0 and 8 below.
        var defaults = seqLens.Select((s, l) => Math.Min(s, l == 0 ? 16 : 8)).ToArray();
        Model = new ModelDescription(config.ImageSizes[0], config.ClassNum, seqLens, defaults, ModelCheckpoint.ReadClassNames(o.ModelPath));
        logger.LogInformation("Loaded {Path} on {Device}: {Size}×{Size} images, {Classes} classes, {Levels} levels (patches per level {SeqLens})",
            o.ModelPath, o.Device, Model.ImageSize, Model.ImageSize, Model.ClassCount, Model.Levels, string.Join(",", seqLens));
    }

    public ModelDescription Model { get; }

    /// <summary>
    /// Generates one throw-away image with one iteration per level, so that the first request does not pay for the
    /// first forward passes (TorchSharp and libtorch initialise lazily; seconds on a CPU).
    /// </summary>
    public void WarmUp()
    {
        var timer = System.Diagnostics.Stopwatch.StartNew();
        Generate(new ImageJob([new ImageRequest(-1, 0)], new SamplingOptions { NumIter = Model.SeqLens.Select(_ => 1).ToArray() }), CancellationToken.None);
        logger.LogInformation("Warmed up in {Seconds:F1}s", timer.Elapsed.TotalSeconds);
    }

    public Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Action<LevelStep>? onStep = null) =>
        // Tensor work is synchronous and keeps its dispose scope on one thread (STYLE.md): run it off the request thread,
        // on a thread of its own, since onStep may block on the job store between two steps.
        Task.Factory.StartNew(() => Generate(job, cancel, onStep), cancel, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    IReadOnlyList<byte[]> Generate(ImageJob job, CancellationToken cancel, Action<LevelStep>? onStep = null)
    {
        var bytes = new FractalSampler(model).Generate(job.Images, job.Options, onStep, cancel, job.StartStep);
        int imageBytes = 3 * Model.ImageSize * Model.ImageSize;
        return Enumerable.Range(0, job.Images.Count).Select(i => bytes.AsSpan(i * imageBytes, imageBytes).ToArray()).ToArray();
    }

    public void Dispose() => model.Dispose();
}
