using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// The model as the gateway holds it, in either mode: loaded once at start on <see cref="GatewayOptions.Device"/> with
/// <see cref="GatewayOptions.TorchThreads"/> libtorch threads, its shape for validation, and one generation call that
/// runs level 0 here and hands the levels below to whatever <c>decorate</c> puts there (nothing: embedded mode; a
/// <c>RemotePatchSampler</c>: distributed mode).
/// </summary>
public sealed class GatewayModel : IDisposable
{
    readonly FractalModel model;
    readonly ILogger<GatewayModel> logger;

    public GatewayModel(IOptions<GatewayOptions> options, ILogger<GatewayModel> logger)
    {
        this.logger = logger;
        var o = options.Value;
        // Process-wide, before the first tensor operation: threads started later (one per generation) pick it up lazily.
        if (o.TorchThreads > 0) TorchSharp.torch.set_num_threads(o.TorchThreads);
        var device = new TorchSharp.torch.Device(o.Device);
        if (device.type == TorchSharp.DeviceType.CUDA && !TorchSharp.torch.cuda.is_available())
            throw new OptionsValidationException(GatewayOptions.Section, typeof(GatewayOptions),
                [$"Gateway:Device {o.Device}: CUDA is not available (build with -p:LibTorchBackend=cuda on a machine with the CUDA packages)"]);
        model = ModelCheckpoint.Open(o.ModelPath, o.Preset, device);
        var config = model.Config;
        var seqLens = Enumerable.Range(0, config.Levels).Select(config.SeqLen).ToArray();
        // The command line's defaults: up to 16 MAR steps at level 0 and 8 below.
        var defaults = seqLens.Select((s, l) => Math.Min(s, l == 0 ? 16 : 8)).ToArray();
        Description = new ModelDescription(config.ImageSizes[0], config.ClassNum, seqLens, defaults, ModelCheckpoint.ReadClassNames(o.ModelPath));
        logger.LogInformation("Loaded {Path} on {Device}: {Size}×{Size} images, {Classes} classes, {Levels} levels (patches per level {SeqLens}), {Threads} libtorch threads",
            o.ModelPath, o.Device, Description.ImageSize, Description.ImageSize, Description.ClassCount, Description.Levels,
            string.Join(",", seqLens), TorchSharp.torch.get_num_threads());
    }

    /// <summary>The served model's shape: what requests are validated against.</summary>
    public ModelDescription Description { get; }

    /// <summary>The loaded model (its levels below the first remote one stay unused in distributed mode).</summary>
    public FractalModel Model => model;

    /// <summary>
    /// Generates one throw-away image with one iteration per level, every level in this process, so that the first
    /// request does not pay for the first forward passes (TorchSharp and libtorch initialise lazily; seconds on a CPU).
    /// It needs no level service, so a distributed gateway starts while the levels below are still loading.
    /// </summary>
    public void WarmUp()
    {
        var timer = System.Diagnostics.Stopwatch.StartNew();
        Generate(new ImageJob([new ImageRequest(-1, 0)], new SamplingOptions { NumIter = Description.SeqLens.Select(_ => 1).ToArray() }),
            null, CancellationToken.None);
        logger.LogInformation("Warmed up in {Seconds:F1}s", timer.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Runs <paramref name="job"/> on a thread of its own (tensor work is synchronous and keeps its dispose scope on one
    /// thread, STYLE.md; <paramref name="onStep"/> may block on the job store between two steps). The caller's
    /// execution context flows to that thread, so a deadline set with <c>CallDeadline.Use</c> reaches the remote calls.
    /// </summary>
    public Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, Func<IPatchSampler, int, IPatchSampler>? decorate, CancellationToken cancel,
        Action<LevelStep>? onStep) =>
        Task.Factory.StartNew(() => Generate(job, decorate, cancel, onStep), cancel, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    IReadOnlyList<byte[]> Generate(ImageJob job, Func<IPatchSampler, int, IPatchSampler>? decorate, CancellationToken cancel, Action<LevelStep>? onStep = null)
    {
        // A sampler per call: concurrent calls share only the weights (and whatever decorate shares).
        var bytes = new FractalSampler(model, decorate).Generate(job.Images, job.Options, onStep, cancel, job.StartStep);
        int imageBytes = 3 * Description.ImageSize * Description.ImageSize;
        return Enumerable.Range(0, job.Images.Count).Select(i => bytes.AsSpan(i * imageBytes, imageBytes).ToArray()).ToArray();
    }

    public void Dispose() => model.Dispose();
}
