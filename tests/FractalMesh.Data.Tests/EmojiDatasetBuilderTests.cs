using Xunit;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json.Nodes;

namespace FractalMesh.Data.Tests;

public class EmojiDatasetBuilderTests
{
    [Fact]
    public async Task FixtureBuildHasTheExpectedCountsAndLabels()
    {
        using var temp = new TempFolder();
        var result = await Fixtures.BuildAsync(temp.Path);
        var manifest = result.Manifest;

        Assert.Equal(EmojiCategories.ClassNames, manifest.ClassNames);
        Assert.Equal(Fixtures.ExpectedPerClass, manifest.Counts.Select(c => c.Train + c.Test));
        // Only fluent-emoji-flat:pizza hashes below 100 (checked against an independent Python sha256).
        Assert.Equal(24, manifest.Files.Single(f => f.Split == "train").Count);
        Assert.Equal(1, manifest.Files.Single(f => f.Split == "test").Count);
        Assert.Equal(0, manifest.Uncategorized.Count);
        Assert.Empty(manifest.Skipped);

        var fluent = manifest.Sources.Single(s => s.Prefix == "fluent-emoji-flat");
        Assert.Equal(("@iconify-json/fluent-emoji-flat", "1.2.6", "MIT"), (fluent.Package, fluent.Version, fluent.License));
        Assert.Equal((13, 1, 1, 13), (fluent.Icons, fluent.HiddenSkipped, fluent.AliasesSkipped, fluent.Used));
        Assert.Null(fluent.TarballIntegrity);
        var noto = manifest.Sources.Single(s => s.Prefix == "noto");
        Assert.Equal(("@iconify-json/noto", "1.2.9", "Apache-2.0"), (noto.Package, noto.Version, noto.License));
        Assert.Equal((12, 1, 1, 12), (noto.Icons, noto.HiddenSkipped, noto.AliasesSkipped, noto.Used));

        var train = ImageDataset.Load(result.TrainPath);
        // Records sorted by prefix then name: fluent-emoji-flat (backhand…, chequered-flag, dog-face, …) then noto.
        int[] expectedTrainLabels = [1, 8, 2, 0, 6, 7, 3, 0, 4, 5, 2, 1, 8, 2, 0, 6, 1, 3, 7, 3, 0, 4, 5, 1];
        Assert.Equal(expectedTrainLabels, train.Labels);
        var test = ImageDataset.Load(result.TestPath);
        Assert.Equal([3], test.Labels);
        Assert.Equal(EmojiCategories.ClassNames, train.ClassNames);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public async Task ImagesAreIconsOnWhite(int size)
    {
        using var temp = new TempFolder();
        var result = await Fixtures.BuildAsync(temp.Path, size);
        var train = ImageDataset.Load(result.TrainPath);

        Assert.Equal((size, size, 3), (train.Height, train.Width, train.Channels));
        Assert.Equal(train.Count * 3 * size * size, train.Pixels.Length);
        var plane = size * size;
        for (var i = 0; i < train.Count; i++)
        {
            var image = train.GetImage(i).ToArray();
            foreach (var corner in new[] { 0, size - 1, plane - size, plane - 1 })
                for (var channel = 0; channel < 3; channel++)
                    Assert.True(image[channel * plane + corner] == 255, $"image {i}: corner pixel {corner} channel {channel} is not white");
            var nonWhitePixels = Enumerable.Range(0, plane).Count(p => image[p] != 255 || image[plane + p] != 255 || image[2 * plane + p] != 255);
            Assert.True(nonWhitePixels > plane / 10, $"image {i} has only {nonWhitePixels} non-white pixels");
        }
    }

    [Fact]
    public async Task TwoBuildsAreByteIdentical()
    {
        using var temp = new TempFolder();
        var first = await Fixtures.BuildAsync(temp.Combine("a"));
        // A single rendering thread the second time: the output must not depend on the thread schedule.
        var second = await EmojiDatasetBuilder.BuildAsync(new EmojiDatasetOptions
        {
            OutputDirectory = temp.Combine("b"),
            SourceFolder = Fixtures.Folder,
            MaxDegreeOfParallelism = 1,
        });

        foreach (var name in new[] { EmojiDatasetBuilder.TrainFileName, EmojiDatasetBuilder.TestFileName, ImageDataset.ManifestFileName })
            Assert.Equal(File.ReadAllBytes(temp.Combine("a", name)), File.ReadAllBytes(temp.Combine("b", name)));
        Assert.Equal(first.Manifest.Files, second.Manifest.Files);
    }

    [Fact]
    public void SplitFollowsTheDocumentedHashRule()
    {
        // Values from Python: int.from_bytes(sha256(b"prefix:name").digest()[:4], "big") % 1000.
        Assert.True(EmojiDatasetBuilder.IsTest("fluent-emoji-flat", "pizza"));   // 52
        Assert.False(EmojiDatasetBuilder.IsTest("fluent-emoji-flat", "backhand-index-pointing-left")); // 106
        Assert.False(EmojiDatasetBuilder.IsTest("noto", "pizza"));               // 226
        Assert.True(EmojiDatasetBuilder.IsTest("noto", "pizza", testPerMille: 227));
        Assert.False(EmojiDatasetBuilder.IsTest("noto", "pizza", testPerMille: 226));
        Assert.True(EmojiDatasetBuilder.IsTest("noto", "chequered-flag", testPerMille: 1000)); // 988
        Assert.False(EmojiDatasetBuilder.IsTest("fluent-emoji-flat", "pizza", testPerMille: 0));
    }

    [Fact]
    public async Task AnIconKeepsItsSplitWhenOtherIconsGoAway()
    {
        using var temp = new TempFolder();
        var reduced = temp.Combine("sources");
        CopyFixtures(reduced);
        // Drop every noto icon but pizza from the metadata: the fluent pizza must stay the only test image.
        var metadataPath = Path.Combine(reduced, "noto", "metadata.json");
        File.WriteAllText(metadataPath, """{ "categories": { "Food & Drink": ["pizza"] } }""");

        var result = await Fixtures.BuildAsync(temp.Combine("out"), sourceFolder: reduced);
        Assert.Equal([3], ImageDataset.Load(result.TestPath).Labels);
        Assert.Equal(13, result.Manifest.Files.Single(f => f.Split == "train").Count);
    }

    [Fact]
    public async Task UncategorizedIconsAreDroppedAndCounted()
    {
        using var temp = new TempFolder();
        var sources = temp.Combine("sources");
        CopyFixtures(sources);
        // Move two noto icons into a category no class maps to, and drop one from the metadata altogether.
        var metadataPath = Path.Combine(sources, "noto", "metadata.json");
        var metadata = JsonNode.Parse(File.ReadAllText(metadataPath))!;
        var categories = metadata["categories"]!.AsObject();
        categories["Symbols"] = new JsonArray();
        categories["Component"] = new JsonArray("recycling-symbol");
        categories["Flags"] = new JsonArray();
        File.WriteAllText(metadataPath, metadata.ToJsonString());

        var result = await Fixtures.BuildAsync(temp.Combine("out"), sourceFolder: sources);
        var manifest = result.Manifest;
        Assert.Equal(2, manifest.Uncategorized.Count);
        Assert.Equal(["noto:chequered-flag", "noto:recycling-symbol"], manifest.Uncategorized.Icons);
        var noto = manifest.Sources.Single(s => s.Prefix == "noto");
        Assert.Equal((2, 10), (noto.Uncategorized, noto.Used));
        Assert.Equal(["Component"], noto.UnmappedCategories);
        Assert.Equal(23, manifest.Counts.Sum(c => c.Train + c.Test));
    }

    [Fact]
    public async Task BuildsFromCachedNpmTarballs()
    {
        using var temp = new TempFolder();
        var cache = temp.Combine("cache");
        Directory.CreateDirectory(cache);
        var packages = new List<NpmPackageRef>();
        foreach (var (folder, name, version) in new[] { ("noto", "@iconify-json/noto", "1.2.9"), ("fluent-emoji-flat", "@iconify-json/fluent-emoji-flat", "1.2.6") })
        {
            var package = new NpmPackageRef(name, version);
            var tarball = Path.Combine(cache, package.TarballFileName);
            WriteNpmStyleTarball(Path.Combine(Fixtures.Folder, folder), tarball);
            // The pinned integrity matches the cached file, so the build never runs npm.
            packages.Add(package with { ExpectedIntegrity = IconPackage.NpmIntegrity(File.ReadAllBytes(tarball)) });
        }

        var fromTarballs = await EmojiDatasetBuilder.BuildAsync(new EmojiDatasetOptions
        {
            OutputDirectory = temp.Combine("out-npm"),
            CacheDirectory = cache,
            Packages = packages,
        });
        var fromFolders = await Fixtures.BuildAsync(temp.Combine("out-folder"));

        Assert.Equal(File.ReadAllBytes(fromFolders.TrainPath), File.ReadAllBytes(fromTarballs.TrainPath));
        Assert.Equal(File.ReadAllBytes(fromFolders.TestPath), File.ReadAllBytes(fromTarballs.TestPath));
        var noto = fromTarballs.Manifest.Sources.Single(s => s.Prefix == "noto");
        Assert.Equal(packages.Single(p => p.Name == "@iconify-json/noto").ExpectedIntegrity, noto.TarballIntegrity);
        Assert.Matches("^[0-9a-f]{40}$", noto.TarballShasum!);
    }

    [Fact]
    public async Task TwemojiFlagsAreLabelledFlagsAndRenderAsTheirFlags()
    {
        using var temp = new TempFolder();
        var result = await Fixtures.BuildAsync(temp.Path, testPerMille: 0, sourceFolder: Path.Combine(Fixtures.Folder, "twemoji-flags"));
        var twemoji = result.Manifest.Sources.Single();
        Assert.Equal(("@iconify-json/twemoji", "1.2.5", "CC-BY-4.0", 3), (twemoji.Package, twemoji.Version, twemoji.License, twemoji.Used));

        var train = ImageDataset.Load(result.TrainPath);
        // flag-france, flag-japan, grinning-face: sorted by name.
        Assert.Equal([8, 8, 0], train.Labels);
        const int plane = 32 * 32;
        (byte R, byte G, byte B) Pixel(int image, int x, int y)
        {
            var pixels = train.GetImage(image);
            return (pixels[y * 32 + x], pixels[plane + y * 32 + x], pixels[2 * plane + y * 32 + x]);
        }
        // The tricolour fills the width and 26/36 of the height: blue, white, red from left to right, white above.
        var (blue, white, red) = (Pixel(0, 4, 16), Pixel(0, 16, 16), Pixel(0, 27, 16));
        Assert.True(blue.B > 120 && blue.R < 40, $"left band {blue}");
        Assert.True(white.R > 220 && white.G > 220 && white.B > 220, $"middle band {white}");
        Assert.True(red.R > 200 && red.G < 80, $"right band {red}");
        Assert.Equal(((byte)255, (byte)255, (byte)255), Pixel(0, 16, 1));
        // Japan: a red disc on white.
        var (disc, field) = (Pixel(1, 16, 16), Pixel(1, 6, 16));
        Assert.True(disc.R > 200 && disc.G < 60, $"disc {disc}");
        Assert.True(field.R > 220 && field.G > 220 && field.B > 220, $"field {field}");
    }

    [Fact]
    public async Task RejectsUnsupportedSizes()
    {
        using var temp = new TempFolder();
        await Assert.ThrowsAsync<ArgumentException>(() => Fixtures.BuildAsync(temp.Path, size: 48));
    }

    [Fact]
    public void FindsExtractedPackageFolders()
    {
        using var temp = new TempFolder();
        CopyFixtures(temp.Combine("a"));
        // The layout `tar xzf` leaves: <folder>/package/icons.json.
        CopyFolder(Path.Combine(Fixtures.Folder, "noto"), temp.Combine("b", "noto-1.2.9", "package"));
        Assert.Equal(2, EmojiDatasetBuilder.FindPackageFolders(temp.Combine("a")).Count);
        Assert.Equal([temp.Combine("b", "noto-1.2.9", "package")], EmojiDatasetBuilder.FindPackageFolders(temp.Combine("b")));
        Assert.Throws<DirectoryNotFoundException>(() => EmojiDatasetBuilder.FindPackageFolders(temp.Combine("missing")));
    }

    [Fact]
    public void SvgDocumentUsesTheIconViewBox()
    {
        var swan = new IconifyIcon("swan", "<path d=\"M0 0h1v1z\"/>", 0, 0, 32, 33);
        var svg = SvgIconRenderer.ToSvgDocument(swan, 32);
        Assert.Contains("viewBox=\"0 0 32 33\"", svg);
        Assert.StartsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"", svg);
        Assert.EndsWith("<path d=\"M0 0h1v1z\"/></svg>", svg);
    }

    private static void CopyFixtures(string destination)
    {
        foreach (var package in new[] { "noto", "fluent-emoji-flat" })
            CopyFolder(Path.Combine(Fixtures.Folder, package), Path.Combine(destination, package));
    }

    private static void CopyFolder(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
    }

    private static void WriteNpmStyleTarball(string packageFolder, string tarballPath)
    {
        using var file = File.Create(tarballPath);
        using var gzip = new GZipStream(file, CompressionLevel.Optimal);
        using var tar = new TarWriter(gzip, TarEntryFormat.Pax);
        foreach (var path in Directory.GetFiles(packageFolder).Order(StringComparer.Ordinal))
            tar.WriteEntry(path, "package/" + Path.GetFileName(path));
    }
}
