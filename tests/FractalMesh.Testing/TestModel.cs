using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using static TorchSharp.torch;

namespace FractalMesh.Testing;

/// <summary>The reference case <c>tiny_mar</c> (16×16, MAR levels 0 and 1, pixel head) and helpers around it.</summary>
public static class TestModel
{
    /// <summary>The folder with config.json and checkpoint-last.pth.</summary>
    public static string Folder => TestPaths.TinyModelFolder;

    static readonly Lazy<FractalModel> model = new(() =>
    {
        // The tiny model gains nothing from intra-op threads, and several sampling threads plus the services share 2 cores.
        set_num_threads(1);
        return ModelCheckpoint.Open(Folder);
    });

    /// <summary>One in-process copy of the model for the whole test run (read-only use).</summary>
    public static FractalModel Model => model.Value;

    public static SamplingOptions Options(float cfg) => new() { Cfg = cfg, NumIter = [4, 4] };

    public static IReadOnlyList<ImageRequest> Images(int count, long seed) =>
        Enumerable.Range(0, count).Select(i => new ImageRequest(i % Model.Config.ClassNum, seed + i)).ToList();

    /// <summary>
    /// Level 0's request for <paramref name="images"/>, built as <see cref="FractalSampler.Generate"/> builds it: class
    /// embeddings repeated as conditions, the null embedding for guidance, one stream per image seed. The caller owns it.
    /// </summary>
    public static PatchRequest LevelZeroRequest(IReadOnlyList<ImageRequest> images, SamplingOptions options)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        int rows = images.Count, size = Model.Config.ImageSizes[0];
        var labels = tensor(images.Select(i => (long)Math.Max(0, i.Label)).ToArray());
        var cond = Model.ClassConditions(labels, tensor(images.Select(i => i.Label < 0).ToArray()));
        var nullCond = Model.NullConditions(rows);
        bool guided = options.Cfg != 1f;
        var request = new PatchRequest
        {
            Conds = Enumerable.Range(0, 5).Select(_ => cond.clone().MoveToOuterDisposeScope()).ToArray(),
            NullConds = guided ? Enumerable.Range(0, 5).Select(_ => nullCond.clone().MoveToOuterDisposeScope()).ToArray() : null,
            Size = size,
            KnownPixels = new byte[rows * 3 * size * size],
            KnownMask = new bool[rows * size * size],
            Cfg = Enumerable.Repeat(options.Cfg, rows).ToArray(),
            Temperature = Enumerable.Repeat(options.Temperature, rows).ToArray(),
            FilterThreshold = Enumerable.Repeat(options.FilterThreshold, rows).ToArray(),
            NumIter = options.NumIter,
            Streams = images.Select(i => RowStream.ForImage(i.Seed)).ToArray(),
            LinearCfg = options.LinearCfg,
            LinearTemperature = options.LinearTemperature,
        };
        return request;
    }

    /// <summary>A well-formed level-1 request of <paramref name="rows"/> rows with random conditions (for load and error tests).</summary>
    public static Protos.Level.SamplePatchesRequest LevelOneMessage(int rows, int seed = 1, bool guided = false)
    {
        var rng = new Random(seed);
        int width = Model.Config.Widths[0];
        var message = new Protos.Level.SamplePatchesRequest
        {
            Level = 1, PatchSize = Model.Config.ImageSizes[1], CondCount = 5, CondWidth = width, Guided = guided, NumIter = { 2 },
        };
        byte[] Conds()
        {
            var floats = new float[5 * width];
            for (int i = 0; i < floats.Length; i++) floats[i] = (float)(rng.NextDouble() * 2 - 1);
            return System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();
        }
        for (int r = 0; r < rows; r++)
        {
            var row = new Protos.Level.PatchRow
            {
                Conds = Google.Protobuf.ByteString.CopyFrom(Conds()),
                Cfg = guided ? 2f : 1f, Temperature = 1f, FilterThreshold = 1e-4f, Stream = (ulong)(seed * 1000 + r),
            };
            if (guided) row.NullConds = Google.Protobuf.ByteString.CopyFrom(Conds());
            message.Rows.Add(row);
        }
        return message;
    }
}
