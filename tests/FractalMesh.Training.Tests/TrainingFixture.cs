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
                    pixels[(i * 3 + c) * 64 + p] = (byte)(labels[i] == 0 ? 40 * c + 3 * p : 250 - 30 * c - 2 * (p % 8));
        }
        FmdsFile.Write(TrainSplit, 8, 8, labels, pixels);
    }

    public void Dispose() => Directory.Delete(Folder, true);
}
