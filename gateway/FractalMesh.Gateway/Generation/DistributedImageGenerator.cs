using FractalMesh.Model.Sampling;
using FractalMesh.Rpc;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// Distributed mode (DESIGN.md §3, §5): level 0 (and any level above <see cref="GatewayOptions.FirstRemoteLevel"/>) runs in
/// this process, so previews, per-step checkpoints and resumption from a level-0 step are exactly those of the embedded
/// mode; the levels from <see cref="GatewayOptions.FirstRemoteLevel"/> down are sampled by level services at
/// <see cref="GatewayOptions.LevelAddresses"/> through one <see cref="RemotePatchSampler"/> shared by every call of the
/// process (one channel, one circuit breaker, round-robin over the replicas; the level service batches the rows of
/// concurrent calls into shared forward passes). Counter-based randomness makes the bytes those of the embedded mode.
/// </summary>
public sealed class DistributedImageGenerator : IImageGenerator, IDisposable
{
    readonly GatewayModel model;
    readonly Func<IPatchSampler, int, IPatchSampler> decorate;

    public DistributedImageGenerator(GatewayModel model, IOptions<GatewayOptions> options, ILogger<DistributedImageGenerator> logger)
    {
        this.model = model;
        var o = options.Value;
        var config = model.Model.Config;
        int first = o.FirstRemoteLevel;
        if (first > config.Levels)
            throw new OptionsValidationException(GatewayOptions.Section, typeof(GatewayOptions),
                [$"Gateway:FirstRemoteLevel is {first} but the model has levels 0..{config.Levels - 1} and its pixel head ({config.Levels})"]);
        // The sampler standing for level `first` completes the patches its level-(first-1) caller hands down (as ServedLevels builds it).
        var node = model.Model;
        while (node.Level < first && node.Next is { } below) node = below;
        int patchSize = first == config.Levels ? 1 : node.Generator.PatchSize;
        Remote = new RemotePatchSampler(new RemoteLevelOptions
        {
            Addresses = o.LevelAddresses,
            Level = first,
            Timeout = TimeSpan.FromSeconds(o.LevelTimeoutSeconds),
        }, patchSize);
        decorate = (inner, level) => level == first ? Remote : inner;
        logger.LogInformation("Distributed mode: levels 0..{Last} here, level {First} and below at {Addresses}",
            first - 1, first, string.Join(", ", o.LevelAddresses));
    }

    public ModelDescription Model => model.Description;

    /// <summary>The level services' client, shared by every call.</summary>
    public RemotePatchSampler Remote { get; }

    public Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Action<LevelStep>? onStep = null) =>
        model.GenerateAsync(job, decorate, cancel, onStep);

    public void Dispose() => Remote.Dispose();
}
