using FractalMesh.Model.Sampling;

namespace FractalMesh.Gateway.Generation;

/// <summary>
/// What the public API needs from the model, whichever way its levels run: in this process (embedded mode, the default)
/// or with levels behind level services (distributed mode, level 0 calling the next level over gRPC).
/// </summary>
public interface IImageGenerator
{
    /// <summary>The shape of the model being served: what requests are validated against.</summary>
    ModelDescription Model { get; }

    /// <summary>
    /// Generates every image of the job, in order, as planar RGB bytes (3×S×S each, S = <see cref="ModelDescription.ImageSize"/>).
    /// Known pixels come back unchanged. Cancelling stops at the next step of any level and throws <see cref="OperationCanceledException"/>.
    /// <paramref name="onStep"/> sees the partial images after every level-0 step; the next step waits for it.
    /// </summary>
    Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Func<LevelStep, ValueTask>? onStep = null);
}

/// <summary>A validated request: one <see cref="ImageRequest"/> per image (image i carries seed + i) and shared options.</summary>
/// <param name="Images">One entry per image, in request order.</param>
/// <param name="Options">Guidance, temperature, filter and iterations, shared by every image.</param>
/// <param name="StartStep">
/// Level-0 step to resume at (0: from the start); the images then carry the partial image of that step as known pixels and
/// the request's own mask as <see cref="ImageRequest.OriginalKnownMask"/>. The result is the same bytes as an uninterrupted run.
/// </param>
public sealed record ImageJob(IReadOnlyList<ImageRequest> Images, SamplingOptions Options, int StartStep = 0);

/// <summary>The served model's shape (paper §3: level l splits its patch into a grid of SeqLens[l] sub-patches).</summary>
/// <param name="ImageSize">Side of the generated image in pixels (the level-0 canvas).</param>
/// <param name="ClassCount">Classes 0..ClassCount-1; -1 asks for an unconditional image.</param>
/// <param name="SeqLens">Patches per level, one entry per level; num_iter[l] ranges over 1..SeqLens[l].</param>
/// <param name="DefaultNumIter">Iterations per level when a request leaves num_iter empty (as the command line's default).</param>
/// <param name="ClassNames">Class names in label order where the checkpoint has them, else empty.</param>
/// <param name="Recommended">The sampling settings the checkpoint recommends, where it does; requests' defaults stay official.</param>
public sealed record ModelDescription(int ImageSize, int ClassCount, int[] SeqLens, int[] DefaultNumIter, IReadOnlyList<string> ClassNames,
    RecommendedSampling? Recommended = null)
{
    public int Levels => SeqLens.Length;
}
