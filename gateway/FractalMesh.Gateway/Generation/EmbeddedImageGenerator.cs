using FractalMesh.Model.Sampling;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// Embedded mode (DESIGN.md §3), the default: the whole hierarchy in this process through <see cref="FractalSampler"/>.
/// The model is loaded once when the gateway starts; each call gets its own sampler, so concurrent calls share only the weights.
/// </summary>
public sealed class EmbeddedImageGenerator(GatewayModel model) : IImageGenerator
{
    public ModelDescription Model => model.Description;

    public Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Action<LevelStep>? onStep = null) =>
        model.GenerateAsync(job, decorate: null, cancel, onStep);
}
