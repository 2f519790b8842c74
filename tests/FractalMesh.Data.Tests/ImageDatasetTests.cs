using Xunit;
using System.Buffers.Binary;

namespace FractalMesh.Data.Tests;

public class ImageDatasetTests
{
    [Fact]
    public void RoundTripsWhatTheWriterWrote()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("tiny.fmds");
        int[] labels = [0, 7, 65535];
        var pixels = Enumerable.Range(0, labels.Length * 3 * 2 * 5).Select(i => (byte)(i * 7)).ToArray();
        FmdsFile.Write(path, height: 2, width: 5, labels, pixels);

        var dataset = ImageDataset.Load(path);
        Assert.Equal((3, 2, 5, 3), (dataset.Count, dataset.Height, dataset.Width, dataset.Channels));
        Assert.Equal(labels, dataset.Labels);
        Assert.Equal(pixels, dataset.Pixels);
        Assert.Equal(pixels.AsSpan(30, 30).ToArray(), dataset.GetImage(1).ToArray());
        Assert.Empty(dataset.ClassNames);
        Assert.Equal(24 + 3 * (2 + 30), new FileInfo(path).Length);
        Assert.False(File.Exists(path + ".partial"));
    }

    [Fact]
    public void HeaderIsTheDocumentedLayout()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("one.fmds");
        FmdsFile.Write(path, 4, 3, [9], new byte[36]);
        var bytes = File.ReadAllBytes(path);
        Assert.Equal("FMDS"u8.ToArray(), bytes[..4]);
        Assert.Equal(new uint[] { 1, 1, 4, 3, 3 },
            Enumerable.Range(0, 5).Select(i => BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4 + 4 * i))));
        Assert.Equal(9, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(24)));
    }

    [Fact]
    public async Task ReadsTheBuiltDatasetWithClassNames()
    {
        using var temp = new TempFolder();
        var result = await Fixtures.BuildAsync(temp.Path);
        var train = ImageDataset.Load(result.TrainPath);
        Assert.Equal(24, train.Count);
        Assert.Equal("Smileys & Emotion", train.ClassNames[0]);
        Assert.Equal(result.Manifest.ToJson(), DatasetManifest.Load(result.ManifestPath).ToJson());
    }

    [Fact]
    public void MissingFileNamesThePath()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("nope.fmds");
        var error = Assert.Throws<FileNotFoundException>(() => ImageDataset.Load(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void TruncatedFileNamesThePath()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("cut.fmds");
        FmdsFile.Write(path, 2, 2, [1, 2], new byte[24]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^5]);
        var error = Assert.Throws<InvalidDataException>(() => ImageDataset.Load(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("PNG\n not a dataset at all, just some text that is long enough")]
    public void WrongMagicNamesThePath(string content)
    {
        using var temp = new TempFolder();
        var path = temp.Combine("bad.fmds");
        File.WriteAllText(path, content);
        var error = Assert.Throws<InvalidDataException>(() => ImageDataset.Load(path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void UnknownVersionIsRejected()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("v2.fmds");
        FmdsFile.Write(path, 1, 1, [0], new byte[3]);
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 2);
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<InvalidDataException>(() => ImageDataset.Load(path));
        Assert.Contains("version 2", error.Message);
    }

    [Fact]
    public void CorruptManifestNamesTheManifest()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("train.fmds");
        FmdsFile.Write(path, 1, 1, [0], new byte[3]);
        var manifest = temp.Combine(ImageDataset.ManifestFileName);
        File.WriteAllText(manifest, "{ \"classNames\": [");
        var error = Assert.Throws<InvalidDataException>(() => ImageDataset.Load(path));
        Assert.Contains(manifest, error.Message);
    }

    [Fact]
    public void LabelBeyondTheManifestClassesIsRejected()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("train.fmds");
        FmdsFile.Write(path, 1, 1, [0, 2], new byte[6]);
        File.WriteAllText(temp.Combine(ImageDataset.ManifestFileName), """{ "classNames": ["a", "b"] }""");
        var error = Assert.Throws<InvalidDataException>(() => ImageDataset.Load(path));
        Assert.Contains(path, error.Message);
    }
}
