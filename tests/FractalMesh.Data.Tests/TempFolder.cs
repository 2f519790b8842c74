namespace FractalMesh.Data.Tests;

/// <summary>A fresh folder under the system temp folder, deleted when disposed.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "fractalmesh-data-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless; failing the test over it would hide the real result.
        }
    }
}

/// <summary>Where the committed fixture packages are in the test output.</summary>
internal static class Fixtures
{
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "fixtures");

    /// <summary>The fixture's labels per class (Fluent 13 icons + Noto 12), in label order.</summary>
    public static readonly int[] ExpectedPerClass = [4, 4, 3, 4, 2, 2, 2, 2, 2];

    public static Task<EmojiDatasetResult> BuildAsync(string outputDirectory, int size = 32, int testPerMille = EmojiDatasetBuilder.DefaultTestPerMille, string? sourceFolder = null) =>
        EmojiDatasetBuilder.BuildAsync(new EmojiDatasetOptions
        {
            OutputDirectory = outputDirectory,
            ImageSize = size,
            SourceFolder = sourceFolder ?? Folder,
            TestPerMille = testPerMille,
        });
}
