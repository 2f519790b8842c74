using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// The model as the gateway knows it: always its description (canvas, classes, levels, default iterations: what requests
/// are validated against); its weights only where this process runs levels (the embedded mode, or a distributed mode
/// whose <see cref="GatewayOptions.FirstRemoteLevel"/> is above 0). A distributed gateway with level 0 in level services
/// reads the description from the checkpoint's header or configuration and loads no weight.
/// </summary>
public sealed class GatewayModel : IDisposable
{
    readonly FractalModel? model;
    readonly ILogger<GatewayModel> logger;

    public GatewayModel(IOptions<GatewayOptions> options, ILogger<GatewayModel> logger)
    {
        this.logger = logger;
        var o = options.Value;
        FractalConfig config;
        if (o.Distributed && o.FirstRemoteLevel == 0)
        {
            config = ModelCheckpoint.OpenConfig(o.ModelPath, o.Preset);
            logger.LogInformation("Described {Path} without loading weights: every level runs in level services", o.ModelPath);
        }
        else
        {
            // Process-wide, before the first tensor operation.
            if (o.TorchThreads > 0) TorchSharp.torch.set_num_threads(o.TorchThreads);
            var device = new TorchSharp.torch.Device(o.Device);
            if (device.type == TorchSharp.DeviceType.CUDA && !TorchSharp.torch.cuda.is_available())
                throw new OptionsValidationException(GatewayOptions.Section, typeof(GatewayOptions),
                    [$"Gateway:Device {o.Device}: CUDA is not available (build with -p:LibTorchBackend=cuda on a machine with the CUDA packages)"]);
            model = ModelCheckpoint.Open(o.ModelPath, o.Preset, device);
            config = model.Config;
            long parameters = model.parameters().Sum(p => p.numel());
            logger.LogInformation("Loaded {Path} on {Device}: {Parameters:N0} parameters, {Threads} libtorch threads", o.ModelPath, o.Device, parameters,
                TorchSharp.torch.get_num_threads());
        }
        var seqLens = Enumerable.Range(0, config.Levels).Select(config.SeqLen).ToArray();
        Description = new ModelDescription(config.ImageSizes[0], config.ClassNum, seqLens, SamplingOptions.DefaultNumIter(config), ModelCheckpoint.ReadClassNames(o.ModelPath),
            RecommendedOrNone(o.ModelPath));
        logger.LogInformation("Serving {Size}×{Size} images, {Classes} classes, {Levels} levels (patches per level {SeqLens})",
            Description.ImageSize, Description.ImageSize, Description.ClassCount, Description.Levels, string.Join(",", seqLens));
    }

    /// <summary>The checkpoint's recommended settings; a malformed entry is advice lost, not a reason to stop serving.</summary>
    RecommendedSampling? RecommendedOrNone(string path)
    {
        try { return ModelCheckpoint.ReadRecommendedSampling(path); }
        catch (InvalidDataException e)
        {
            logger.LogWarning("Ignoring the checkpoint's recommended settings: {Reason}", e.Message);
            return null;
        }
    }

    /// <summary>The served model's shape: what requests are validated against.</summary>
    public ModelDescription Description { get; }

    /// <summary>Whether this process holds the weights (it runs at least level 0).</summary>
    public bool HasWeights => model is not null;

    /// <summary>The loaded model.</summary>
    public FractalModel Model => model ?? throw new InvalidOperationException("this gateway holds no weights: level 0 runs in a level service");

    /// <summary>
    /// Generates one throw-away image with one iteration per level, every level in this process, so that the first
    /// request does not pay for the first forward passes (TorchSharp and libtorch initialise lazily; seconds on a CPU).
    /// It needs no level service, so a distributed gateway starts while the levels below are still loading. Nothing to do
    /// without weights.
    /// </summary>
    public void WarmUp()
    {
        if (model is null) return;
        var timer = System.Diagnostics.Stopwatch.StartNew();
        new FractalSampler(model).Generate([new ImageRequest(-1, 0)], new SamplingOptions { NumIter = Description.SeqLens.Select(_ => 1).ToArray() });
        logger.LogInformation("Warmed up in {Seconds:F1}s", timer.Elapsed.TotalSeconds);
    }

    /// <summary>Cuts R × 3 × S × S bytes into one array per image.</summary>
    public IReadOnlyList<byte[]> Split(byte[] bytes, int images)
    {
        int imageBytes = 3 * Description.ImageSize * Description.ImageSize;
        return Enumerable.Range(0, images).Select(i => bytes.AsSpan(i * imageBytes, imageBytes).ToArray()).ToArray();
    }

    public void Dispose() => model?.Dispose();
}
