using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// The contract every level implements (docs/ARCHITECTURE.md, The level contract): <c>R</c> rows, each with its conditions, the known pixels of its
/// patch (bytes and a mask, possibly empty) and its sampling parameters; the answer is every row's completed patch as bytes.
/// Guidance pairs travel together: row <c>r</c>'s null-conditioned partner is row <c>r</c> of <see cref="NullConds"/>.
/// </summary>
public sealed class PatchRequest : IDisposable
{
    /// <summary>Conditions from the level above, each (R, C); level 0 gets its class embedding repeated.</summary>
    public required Tensor[] Conds { get; init; }
    /// <summary>The null-conditioned partner rows' conditions, each (R, C); null when no row uses guidance.</summary>
    public Tensor[]? NullConds { get; init; }
    /// <summary>Side of the patch in pixels.</summary>
    public required int Size { get; init; }
    /// <summary>R × 3 × Size × Size bytes, planar per row; meaningful where <see cref="KnownMask"/> is set.</summary>
    public required byte[] KnownPixels { get; init; }
    /// <summary>R × Size × Size, true where the pixel is known and must come back unchanged.</summary>
    public required bool[] KnownMask { get; init; }
    /// <summary>Per-row guidance scale (1 = none), temperature (multiplies logits) and low-probability filter threshold.</summary>
    public required float[] Cfg { get; init; }
    public required float[] Temperature { get; init; }
    public required float[] FilterThreshold { get; init; }
    /// <summary>Iterations of this level and every level below (the remaining part of the request's list).</summary>
    public required int[] NumIter { get; init; }
    /// <summary>Per-row random streams.</summary>
    public required RowStream[] Streams { get; init; }
    /// <summary>
    /// Resumption (level 0): the step to start from, and the known mask of the original request, which fixes the random
    /// orders and schedules; <see cref="KnownPixels"/>/<see cref="KnownMask"/> then hold the partial image reached.
    /// Starting at step k from the image an uninterrupted run had after k steps gives the same bytes.
    /// </summary>
    public int StartStep { get; init; }
    public bool[]? OriginalKnownMask { get; init; }

    /// <summary>Level 0 only: whether guidance follows the linear schedule (else constant).</summary>
    public bool LinearCfg { get; init; }

    /// <summary>
    /// Level 0 only: whether the temperature grows from 1 towards <see cref="Temperature"/> over level 0's steps as linear
    /// guidance grows towards the guidance scale (the levels below sample with the step's value); else constant, as the reference.
    /// </summary>
    public bool LinearTemperature { get; init; }

    /// <summary>
    /// Level 0 only: sees the partial images after every step of this call (progress, previews, checkpoints); the next
    /// step starts once it has finished.
    /// </summary>
    public Func<LevelStep, ValueTask>? OnStep { get; init; }

    public int Rows => Streams.Length;
    public bool Guided => NullConds is not null;

    public void Dispose()
    {
        foreach (var t in Conds) t.Dispose();
        if (NullConds is not null) foreach (var t in NullConds) t.Dispose();
    }
}

/// <summary>
/// A sampler of one level (or the pixel head): completes every row's patch. Asynchronous end to end: a call waits for
/// shared forward passes and for the level below (in process or remote) without holding a thread.
/// </summary>
public interface IPatchSampler
{
    /// <summary>Side of the patches this sampler completes.</summary>
    int PatchSize { get; }
    /// <summary>Returns R × 3 × Size × Size bytes. Known pixels come back unchanged. The request stays the caller's.</summary>
    Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default);
}
