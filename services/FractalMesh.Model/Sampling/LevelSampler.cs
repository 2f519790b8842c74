using FractalMesh.Model.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Model.Sampling;

/// <summary>A level-0 step finished: the image so far (bytes, R×3×H×W) and which pixels are generated or known.</summary>
public readonly record struct LevelStep(int Step, int Steps, byte[] Partial, bool[] Done);

/// <summary>
/// Shared bookkeeping of a generator level: patches of each row as bytes and normalized values, which patches are
/// (fully) known, and the child requests that hand patches down to the next sampler.
/// </summary>
public abstract class LevelSampler(int level, int seqLen, int patchSize, IPatchSampler next) : IPatchSampler
{
    protected int Level { get; } = level;
    protected int SeqLen { get; } = seqLen;
    protected int Grid { get; } = (int)Math.Round(Math.Sqrt(seqLen));
    public int PatchSize { get; } = patchSize;
    protected IPatchSampler Next { get; } = next;

    public abstract Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default);

    /// <summary>Working state of one call: the image bytes, known flags, and the normalized patch tensor the transformer reads.</summary>
    protected sealed class Canvas
    {
        public required byte[] Bytes;     // R × 3 × s × s
        public required bool[] Done;      // R × s × s: known or generated
        public required int Size;
        public required int Patch;
        public required int Grid;

        public int PixelsPerRow => Size * Size;

        /// <summary>How many pixels of patch <paramref name="j"/> of row <paramref name="r"/> are known.</summary>
        public int KnownInPatch(int r, int j)
        {
            int count = 0, py = j / Grid * Patch, px = j % Grid * Patch;
            for (int y = 0; y < Patch; y++)
                for (int x = 0; x < Patch; x++)
                    if (Done[r * PixelsPerRow + (py + y) * Size + px + x]) count++;
            return count;
        }

        /// <summary>Copies patch j of row r (bytes and mask) into a child buffer at slot <paramref name="slot"/>.</summary>
        public void ExtractPatch(int r, int j, byte[] pixels, bool[] mask, int slot)
        {
            int py = j / Grid * Patch, px = j % Grid * Patch, pp = Patch * Patch;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < Patch; y++)
                    for (int x = 0; x < Patch; x++)
                        pixels[(slot * 3 + c) * pp + y * Patch + x] = Bytes[((r * 3 + c) * Size + py + y) * Size + px + x];
            for (int y = 0; y < Patch; y++)
                for (int x = 0; x < Patch; x++)
                    mask[slot * pp + y * Patch + x] = Done[r * PixelsPerRow + (py + y) * Size + px + x];
        }

        /// <summary>Writes a completed patch back.</summary>
        public void WritePatch(int r, int j, byte[] pixels, int slot)
        {
            int py = j / Grid * Patch, px = j % Grid * Patch, pp = Patch * Patch;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < Patch; y++)
                    for (int x = 0; x < Patch; x++)
                        Bytes[((r * 3 + c) * Size + py + y) * Size + px + x] = pixels[(slot * 3 + c) * pp + y * Patch + x];
            for (int y = 0; y < Patch; y++)
                for (int x = 0; x < Patch; x++)
                    Done[r * PixelsPerRow + (py + y) * Size + px + x] = true;
        }

        /// <summary>(R, S, 3p²) normalized values of the canvas; pixels not yet known are 0, as the reference starts.</summary>
        public Tensor Patches(Device device)
        {
            using var scope = NewDisposeScope();
            int rows = Bytes.Length / (3 * PixelsPerRow);
            var values = new float[Bytes.Length];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < 3; c++)
                    for (int i = 0; i < PixelsPerRow; i++)
                    {
                        int at = (r * 3 + c) * PixelsPerRow + i;
                        values[at] = Done[r * PixelsPerRow + i] ? (Bytes[at] / 255f - Pixels.Mean[c]) / Pixels.Std[c] : 0f;
                    }
            var images = tensor(values, device: device).reshape(rows, 3, Size, Size);
            return Pixels.Patchify(images, Patch).MoveToOuterDisposeScope();
        }
    }

    protected Canvas NewCanvas(PatchRequest request) => new()
    {
        Bytes = (byte[])request.KnownPixels.Clone(),
        Done = (bool[])request.KnownMask.Clone(),
        Size = request.Size,
        Patch = PatchSize,
        Grid = Grid,
    };

    /// <summary>
    /// Hands the listed (row, patch) pairs to the next sampler with their conditions and writes the completed patches back.
    /// <paramref name="conditions"/> gives the conditions (n,C each) of the patches at flat positions row·S + patch of the
    /// level's pass (conditional rows first, then null rows); it runs in a dispose scope that the results leave.
    /// </summary>
    protected async Task SampleChildrenAsync(PatchRequest request, Canvas canvas, IReadOnlyList<(int Row, int Patch)> pairs,
        Func<long[], Tensor[]> conditions, float[] rowCfg, float[] rowTemperature, CancellationToken cancel)
    {
        if (pairs.Count == 0) return;
        int n = pairs.Count, pp = PatchSize * PatchSize, rows = request.Rows;
        var pixels = new byte[n * 3 * pp];
        var mask = new bool[n * pp];
        for (int i = 0; i < n; i++) canvas.ExtractPatch(pairs[i].Row, pairs[i].Patch, pixels, mask, i);
        PatchRequest child;
        // The conditions are gathered in a scope of their own (no scope may span an await) and handed out of it.
        using (var scope = NewDisposeScope())
        {
            // Indices built in managed code: no tensor-scalar arithmetic (see Modules/Scalars.cs).
            Tensor[] Gather(int offsetRows) =>
                conditions(pairs.Select(p => (long)(p.Row + offsetRows) * SeqLen + p.Patch).ToArray()).Select(t => t.MoveToOuterDisposeScope()).ToArray();
            child = new PatchRequest
            {
                Conds = Gather(0),
                NullConds = request.Guided ? Gather(rows) : null,
                Size = PatchSize,
                KnownPixels = pixels,
                KnownMask = mask,
                Cfg = pairs.Select(p => rowCfg[p.Row]).ToArray(),
                Temperature = pairs.Select(p => rowTemperature[p.Row]).ToArray(),
                FilterThreshold = pairs.Select(p => request.FilterThreshold[p.Row]).ToArray(),
                NumIter = request.NumIter.Length > 1 ? request.NumIter[1..] : [],
                Streams = pairs.Select(p => request.Streams[p.Row].Child(Level, p.Patch)).ToArray(),
            };
        }
        byte[] result;
        using (child) result = await Next.SampleAsync(child, cancel);
        for (int i = 0; i < n; i++) canvas.WritePatch(pairs[i].Row, pairs[i].Patch, result, i);
    }

    /// <summary>
    /// The first <paramref name="count"/> conditions, conditional rows then null rows side by side (guidance pairs stay
    /// together). With guidance they are new tensors outside any scope, which the caller disposes; without, the request's own.
    /// </summary>
    protected static Tensor[] BothHalves(PatchRequest request, int count)
    {
        if (!request.Guided) return request.Conds.Take(count).ToArray();
        using var scope = NewDisposeScope();
        return request.Conds.Zip(request.NullConds!, (c, u) => cat([c, u], 0).MoveToOuterDisposeScope()).Take(count).ToArray();
    }
}
