using FractalMesh.Model.Sampling;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// Embedded mode, the default: the whole hierarchy in this process through one <see cref="FractalSampler"/> shared by
/// every call, so concurrent requests share forward passes step by step at every level.
/// </summary>
public sealed class EmbeddedImageGenerator(GatewayModel model) : IImageGenerator
{
    readonly FractalSampler sampler = new(model.Model);

    public ModelDescription Model => model.Description;

    /// <summary>Rows per forward pass of each level so far.</summary>
    public IReadOnlyList<(int Level, PassStatistics Statistics)> PassStatistics => sampler.PassStatistics;

    public async Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Func<LevelStep, ValueTask>? onStep = null)
    {
        var bytes = await sampler.GenerateAsync(job.Images, job.Options, onStep, cancel, job.StartStep).ConfigureAwait(false);
        return model.Split(bytes, job.Images.Count);
    }
}
