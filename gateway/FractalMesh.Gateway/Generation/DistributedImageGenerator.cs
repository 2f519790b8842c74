using FractalMesh.Model.Sampling;
using FractalMesh.Rpc;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// Distributed mode. With <see cref="GatewayOptions.FirstRemoteLevel"/> 0 (the default) every level runs in level
/// services: this process holds no weights, sends each request to a level-0 replica and follows its stream of step
/// events, so previews, per-step checkpoints and resumption stay here while the model runs elsewhere. With a higher
/// first remote level, the levels above it run here through one shared <see cref="FractalSampler"/> and the rest in
/// level services through one <see cref="RemotePatchSampler"/>. Counter-based randomness makes the bytes those of the
/// embedded mode either way.
/// </summary>
public sealed class DistributedImageGenerator : IImageGenerator, IDisposable
{
    readonly GatewayModel model;
    readonly RemoteImageGenerator? levelZero;
    readonly RemotePatchSampler? remote;
    readonly FractalSampler? sampler;

    public DistributedImageGenerator(GatewayModel model, IOptions<GatewayOptions> options, ILogger<DistributedImageGenerator> logger)
    {
        this.model = model;
        var o = options.Value;
        int levels = model.Description.Levels, first = o.FirstRemoteLevel;
        if (first > levels)
            throw new OptionsValidationException(GatewayOptions.Section, typeof(GatewayOptions),
                [$"Gateway:FirstRemoteLevel is {first} but the model has levels 0..{levels - 1} and its pixel head ({levels})"]);
        var remoteOptions = new RemoteLevelOptions
        {
            Addresses = o.LevelAddresses,
            Level = first,
            Timeout = TimeSpan.FromSeconds(o.LevelTimeoutSeconds),
            CallSecret = string.IsNullOrEmpty(o.LevelCallSecret) ? null : o.LevelCallSecret,
            Tls = o.LevelTls,
            CaCertificatePath = string.IsNullOrWhiteSpace(o.LevelCaCertificatePath) ? null : o.LevelCaCertificatePath,
        };
        if (first == 0)
        {
            levelZero = new RemoteImageGenerator(remoteOptions);
            logger.LogInformation("Distributed mode: every level in level services, level 0 at {Addresses}", string.Join(", ", o.LevelAddresses));
            return;
        }
        // The sampler standing for level `first` completes the patches its level-(first-1) caller hands down (as a level service builds it).
        var node = model.Model;
        while (node.Level < first && node.Next is { } below) node = below;
        int patchSize = first == levels ? 1 : node.Generator.PatchSize;
        remote = new RemotePatchSampler(remoteOptions, patchSize);
        sampler = new FractalSampler(model.Model, (inner, level) => level == first ? remote : inner);
        logger.LogInformation("Distributed mode: levels 0..{Last} here, level {First} and below at {Addresses}",
            first - 1, first, string.Join(", ", o.LevelAddresses));
    }

    public ModelDescription Model => model.Description;

    /// <summary>The circuit of the first remote level's client.</summary>
    public CircuitState Circuit => levelZero?.Circuit ?? remote!.Circuit;

    /// <summary>Level-0 generations resumed on another replica after one failed mid-stream.</summary>
    public long Resumptions => levelZero?.Resumptions ?? 0;

    public async Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Func<LevelStep, ValueTask>? onStep = null)
    {
        var bytes = levelZero is not null
            ? await levelZero.GenerateAsync(job.Images, job.Options, job.StartStep, onStep, cancel).ConfigureAwait(false)
            : await sampler!.GenerateAsync(job.Images, job.Options, onStep, cancel, job.StartStep).ConfigureAwait(false);
        return model.Split(bytes, job.Images.Count);
    }

    public void Dispose()
    {
        levelZero?.Dispose();
        remote?.Dispose();
    }
}
