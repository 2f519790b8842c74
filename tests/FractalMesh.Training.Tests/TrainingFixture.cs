using FractalMesh.Data;
using FractalMesh.Model.Config;

namespace FractalMesh.Training.Tests;

/// <summary>A throwaway folder with a tiny dataset of smooth synthetic 8×8 images (two classes) and a tiny preset-like config.</summary>
sealed class TrainingFixture : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("fm-train-").FullName;
    public string TrainSplit => Path.Combine(Folder, "train.fmds");

    public static readonly FractalConfig Config = new()
    {
        ImageSizes = [8, 2, 1], Widths = [32, 16, 16], Blocks = [1, 1, 1], Heads = [2, 2, 2],
        Generators = [GeneratorKind.Mar, GeneratorKind.Mar], NumConds = 5, ClassNum = 2,
    };

    public TrainingFixture(int images = 16)
    {
        var pixels = new byte[images * 3 * 64];
        var labels = new int[images];
        for (int i = 0; i < images; i++)
        {
            labels[i] = i % 2;
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 64; p++)
                    pixels[(i * 3 + c) * 64 + p] = Value(labels[i], c, p / 8);
        }
        FmdsFile.Write(TrainSplit, 8, 8, labels, pixels);
    }

    /// <summary>Class 0 reddish, class 1 bluish, both darkening down the rows: unchanged by horizontal flips.</summary>
    public static byte Value(int label, int channel, int row) => (byte)(label == 0
        ? new[] { 200, 40, 30 }[channel] - 6 * row
        : new[] { 20, 60, 220 }[channel] + 4 * row);

    public void Dispose() => Directory.Delete(Folder, true);
}
