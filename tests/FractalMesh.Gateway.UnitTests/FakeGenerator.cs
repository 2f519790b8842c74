using FractalMesh.Gateway.Generation;
using FractalMesh.Model.Sampling;

namespace FractalMesh.Gateway.UnitTests;

/// <summary>
/// An <see cref="IImageGenerator"/> without a model: a 16×16 canvas, 10 classes and two levels of 16 patches (the tiny
/// reference model's shape). It records the jobs it was given and runs <see cref="Steps"/> level-0 steps that each mark
/// the next share of pixels done; every generated pixel is its image's index, known pixels come back unchanged.
/// </summary>
sealed class FakeGenerator : IImageGenerator
{
    public const int Size = 16;

    public ModelDescription Model { get; } = new(Size, 10, [16, 16], [16, 16], []);

    public int Steps { get; init; } = 4;

    /// <summary>Thrown from the call instead of generating, when set.</summary>
    public Exception? Failure { get; set; }

    public List<ImageJob> Jobs { get; } = [];

    public async Task<IReadOnlyList<byte[]>> GenerateAsync(ImageJob job, CancellationToken cancel, Func<LevelStep, ValueTask>? onStep = null)
    {
        Jobs.Add(job);
        if (Failure is not null) throw Failure;
        int plane = Size * Size, rows = job.Images.Count;
        var pixels = new byte[rows * 3 * plane];
        var done = new bool[rows * plane];
        for (int r = 0; r < rows; r++)
        {
            var image = job.Images[r];
            for (int i = 0; i < plane; i++)
            {
                bool known = image.KnownMask?[i] ?? false;
                done[r * plane + i] = known;
                for (int c = 0; c < 3; c++) pixels[r * 3 * plane + c * plane + i] = known ? image.KnownPixels![c * plane + i] : (byte)r;
            }
        }
        for (int step = job.StartStep; step < Steps; step++)
        {
            cancel.ThrowIfCancellationRequested();
            int upTo = plane * (step + 1) / Steps;
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < upTo; i++) done[r * plane + i] = true;
            if (onStep is not null) await onStep(new LevelStep(step, Steps, (byte[])pixels.Clone(), (bool[])done.Clone()));
        }
        return Enumerable.Range(0, rows).Select(r => pixels.AsSpan(r * 3 * plane, 3 * plane).ToArray()).ToArray();
    }
}
