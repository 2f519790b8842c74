using System.Buffers.Binary;
using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace FractalMesh.Data;

/// <summary>Settings of an emoji dataset build.</summary>
public sealed class EmojiDatasetOptions
{
    /// <summary>The folder that receives <c>train.fmds</c>, <c>test.fmds</c> and <c>manifest.json</c>.</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Images are <c>ImageSize</c>×<c>ImageSize</c>: 32 or 64.</summary>
    public int ImageSize { get; init; } = 32;

    /// <summary>Where npm tarballs are kept between builds; <c>null</c> means <see cref="NpmTarballCache.DefaultDirectory"/>.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>
    /// Read already-extracted packages from this folder instead of running npm: either the folder itself holds
    /// <c>icons.json</c>, or each subfolder does (directly or under <c>package/</c>, as <c>tar xzf</c> leaves it).
    /// </summary>
    public string? SourceFolder { get; init; }

    /// <summary>The npm packages to fetch when <see cref="SourceFolder"/> is not set.</summary>
    public IReadOnlyList<NpmPackageRef> Packages { get; init; } = NpmPackageRef.EmojiDefaults;

    /// <summary>Per mille of icons that go to test (100 = 10%).</summary>
    public int TestPerMille { get; init; } = EmojiDatasetBuilder.DefaultTestPerMille;

    /// <summary>Rendering threads; the output does not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>Receives one line per step of progress (from several threads while rendering); <c>null</c> for silence.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>What a build wrote and how long its steps took.</summary>
/// <param name="Manifest">The manifest that was written.</param>
/// <param name="TrainPath">The train split file.</param>
/// <param name="TestPath">The test split file.</param>
/// <param name="ManifestPath">The manifest file.</param>
/// <param name="ReadTime">Time to fetch and parse the packages.</param>
/// <param name="RenderTime">Time to render the icons.</param>
/// <param name="TotalTime">Time for the whole build.</param>
public sealed record EmojiDatasetResult(
    DatasetManifest Manifest, string TrainPath, string TestPath, string ManifestPath,
    TimeSpan ReadTime, TimeSpan RenderTime, TimeSpan TotalTime);

/// <summary>
/// Builds the emoji image dataset: the Fluent Emoji Flat (MIT, Microsoft), Noto Emoji (Apache-2.0, Google)
/// and Twemoji (CC-BY-4.0, Twitter and contributors) icon sets as packaged by Iconify on npm, rendered to small RGB images labelled with one of
/// <see cref="EmojiCategories.ClassNames"/>.
/// </summary>
/// <remarks>
/// Steps: fetch each package with <c>npm pack</c> (or read extracted folders); parse <c>icons.json</c> and
/// <c>metadata.json</c>, skipping hidden icons and aliases; label each icon by its category, dropping (and counting)
/// icons in no mapped category; sort by prefix then name (ordinal); render each at the image size on white;
/// split by <see cref="IsTest"/>; write <c>train.fmds</c>, <c>test.fmds</c> (<see cref="FmdsFile"/>) and
/// <c>manifest.json</c> (<see cref="DatasetManifest"/>). Every step is deterministic, so two builds from the same
/// packages give byte-identical files.
/// </remarks>
public static class EmojiDatasetBuilder
{
    /// <summary>The train split's file name.</summary>
    public const string TrainFileName = "train.fmds";

    /// <summary>The test split's file name.</summary>
    public const string TestFileName = "test.fmds";

    /// <summary>Default share of test icons, per mille.</summary>
    public const int DefaultTestPerMille = 100;

    /// <summary>The image sizes a build accepts.</summary>
    public static IReadOnlyList<int> SupportedSizes { get; } = [32, 64];

    private const string UncategorizedPolicy =
        "dropped: not rendered and in neither split; counted here and per source";

    /// <summary>
    /// Whether an icon belongs to the test split: the first 4 bytes of SHA-256("prefix:name" in UTF-8), read as a
    /// big-endian unsigned integer, mod 1000, is below <paramref name="testPerMille"/>. The answer depends on the
    /// icon alone, so adding or removing other icons never moves it between splits.
    /// </summary>
    public static bool IsTest(string prefix, string name, int testPerMille = DefaultTestPerMille)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes($"{prefix}:{name}"), hash);
        return BinaryPrimitives.ReadUInt32BigEndian(hash) % 1000 < testPerMille;
    }

    /// <summary>Builds the dataset into <see cref="EmojiDatasetOptions.OutputDirectory"/>.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="InvalidOperationException">npm fails.</exception>
    /// <exception cref="InvalidDataException">A package is malformed.</exception>
    public static async Task<EmojiDatasetResult> BuildAsync(EmojiDatasetOptions options, CancellationToken cancellationToken = default)
    {
        if (!SupportedSizes.Contains(options.ImageSize))
            throw new ArgumentException($"Image size {options.ImageSize} is not one of {string.Join(", ", SupportedSizes)}.", nameof(options));
        if (options.TestPerMille is < 0 or > 1000)
            throw new ArgumentException($"TestPerMille {options.TestPerMille} is not within 0–1000.", nameof(options));

        var log = options.Log ?? (_ => { });
        var total = Stopwatch.StartNew();

        var packages = await ReadPackagesAsync(options, log, cancellationToken);
        var (icons, sources, uncategorized) = CollectLabelledIcons(packages, log);
        var readTime = total.Elapsed;

        var size = options.ImageSize;
        log($"rendering {icons.Count} icons at {size}×{size} on {Math.Max(1, options.MaxDegreeOfParallelism)} threads");
        var renderClock = Stopwatch.StartNew();
        var images = RenderAll(icons, size, options.MaxDegreeOfParallelism, log, cancellationToken);
        var renderTime = renderClock.Elapsed;

        var skipped = new List<string>();
        var train = new SplitBuilder();
        var test = new SplitBuilder();
        var usedPerPrefix = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < icons.Count; i++)
        {
            var icon = icons[i];
            if (images[i] is not { } image)
            {
                skipped.Add(icon.Key);
                continue;
            }
            (IsTest(icon.Prefix, icon.Icon.Name, options.TestPerMille) ? test : train).Add(icon.Label, image);
            usedPerPrefix[icon.Prefix] = usedPerPrefix.GetValueOrDefault(icon.Prefix) + 1;
        }
        foreach (var key in skipped)
            log($"warning: skipped {key}: it did not render or rendered blank");

        Directory.CreateDirectory(options.OutputDirectory);
        var trainPath = Path.Combine(options.OutputDirectory, TrainFileName);
        var testPath = Path.Combine(options.OutputDirectory, TestFileName);
        train.Write(trainPath, size);
        test.Write(testPath, size);

        var classNames = EmojiCategories.ClassNames;
        var manifest = new DatasetManifest(
            Dataset: "emoji",
            Format: "FMDS",
            FormatVersion: FmdsFile.FormatVersion,
            ImageHeight: size,
            ImageWidth: size,
            Channels: FmdsFile.Channels,
            PixelLayout: "uint8 sRGB, CHW (planar R, G, B) per image; icon centred, scaled to fit, on opaque white",
            ClassNames: classNames,
            Split: new SplitRule(
                "test when uint32_be(SHA-256(key)[0..4]) % 1000 < testPerMille, else train; records sorted by prefix then name (ordinal)",
                "prefix:name (UTF-8)",
                options.TestPerMille),
            Files:
            [
                new SplitFile("train", TrainFileName, train.Count, Sha256Hex(trainPath)),
                new SplitFile("test", TestFileName, test.Count, Sha256Hex(testPath)),
            ],
            Counts: Enumerable.Range(0, classNames.Count)
                .Select(label => new ClassCount(label, classNames[label], train.CountOf(label), test.CountOf(label)))
                .ToList(),
            Uncategorized: new UncategorizedIcons(uncategorized.Count, UncategorizedPolicy, uncategorized),
            Skipped: skipped,
            Sources: sources.Select(source => source with { Used = usedPerPrefix.GetValueOrDefault(source.Prefix) }).ToList(),
            Renderer: RendererDescription());
        var manifestPath = Path.Combine(options.OutputDirectory, ImageDataset.ManifestFileName);
        await File.WriteAllTextAsync(manifestPath, manifest.ToJson(), new UTF8Encoding(false), cancellationToken);

        log($"wrote {trainPath} ({train.Count}), {testPath} ({test.Count}), {manifestPath}");
        return new EmojiDatasetResult(manifest, trainPath, testPath, manifestPath, readTime, renderTime, total.Elapsed);
    }

    /// <summary>The package folders under <paramref name="folder"/> that <see cref="EmojiDatasetOptions.SourceFolder"/> reads, sorted.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist or holds no package.</exception>
    public static IReadOnlyList<string> FindPackageFolders(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Source folder not found: {Path.GetFullPath(folder)}");
        if (File.Exists(Path.Combine(folder, "icons.json")))
            return [folder];
        var found = new List<string>();
        foreach (var child in Directory.GetDirectories(folder).Order(StringComparer.Ordinal))
        {
            if (File.Exists(Path.Combine(child, "icons.json")))
                found.Add(child);
            else if (File.Exists(Path.Combine(child, "package", "icons.json")))
                found.Add(Path.Combine(child, "package"));
        }
        if (found.Count == 0)
            throw new DirectoryNotFoundException($"No icons.json in {Path.GetFullPath(folder)} or its subfolders.");
        return found;
    }

    private static async Task<List<IconPackage>> ReadPackagesAsync(EmojiDatasetOptions options, Action<string> log, CancellationToken cancellationToken)
    {
        var packages = new List<IconPackage>();
        if (options.SourceFolder is { } sourceFolder)
        {
            foreach (var folder in FindPackageFolders(sourceFolder))
            {
                log($"reading {folder}");
                packages.Add(IconPackage.FromFolder(folder));
            }
            return packages;
        }
        var cache = options.CacheDirectory ?? NpmTarballCache.DefaultDirectory;
        foreach (var package in options.Packages)
        {
            var tarball = await NpmTarballCache.FetchAsync(package, cache, log, cancellationToken);
            packages.Add(IconPackage.FromTarball(tarball));
        }
        return packages;
    }

    private sealed record LabelledIcon(string Prefix, IconifyIcon Icon, int Label)
    {
        public string Key => $"{Prefix}:{Icon.Name}";
    }

    private static (List<LabelledIcon> Icons, List<SourcePackage> Sources, List<string> Uncategorized) CollectLabelledIcons(
        IReadOnlyList<IconPackage> packages, Action<string> log)
    {
        var icons = new List<LabelledIcon>();
        var sources = new List<SourcePackage>();
        var uncategorized = new List<string>();
        var prefixes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var package in packages)
        {
            var description = $"{package.Name}@{package.Version}";
            var set = IconifyIconSet.Parse(package.IconsJson, package.MetadataJson, description);
            if (!prefixes.Add(set.Prefix))
                throw new InvalidDataException($"{description}: the prefix '{set.Prefix}' is already used by another package.");

            // An icon listed under several categories takes the lowest label, so the result does not depend on
            // the order of the metadata (neither package lists any icon twice today).
            var labelOf = new Dictionary<string, int>(StringComparer.Ordinal);
            var unmapped = new List<string>();
            foreach (var (category, names) in set.Categories)
            {
                if (!EmojiCategories.TryGetLabel(category, out var label))
                {
                    unmapped.Add(category);
                    continue;
                }
                foreach (var name in names)
                    labelOf[name] = labelOf.TryGetValue(name, out var existing) ? Math.Min(existing, label) : label;
            }
            unmapped.Sort(StringComparer.Ordinal);

            var packageUncategorized = 0;
            foreach (var icon in set.Icons)
            {
                if (labelOf.TryGetValue(icon.Name, out var label))
                {
                    icons.Add(new LabelledIcon(set.Prefix, icon, label));
                }
                else
                {
                    packageUncategorized++;
                    uncategorized.Add($"{set.Prefix}:{icon.Name}");
                }
            }
            log($"{description} ({package.License}): {set.Icons.Count} icons, {set.HiddenCount} hidden and {set.AliasCount} aliases skipped, {packageUncategorized} uncategorized"
                + (unmapped.Count > 0 ? $", unmapped categories: {string.Join(", ", unmapped)}" : ""));
            sources.Add(new SourcePackage(
                package.Name, package.Version, package.License, set.Prefix,
                package.TarballIntegrity, package.TarballShasum,
                Convert.ToHexStringLower(SHA256.HashData(package.IconsJson.Span)),
                set.Icons.Count, set.HiddenCount, set.AliasCount, packageUncategorized, unmapped, Used: 0));
        }

        // The order of the records is part of the output, so it must not depend on the order packages were listed.
        icons.Sort((a, b) =>
        {
            var byPrefix = string.CompareOrdinal(a.Prefix, b.Prefix);
            return byPrefix != 0 ? byPrefix : string.CompareOrdinal(a.Icon.Name, b.Icon.Name);
        });
        sources.Sort((a, b) => string.CompareOrdinal(a.Prefix, b.Prefix));
        uncategorized.Sort(StringComparer.Ordinal);
        return (icons, sources, uncategorized);
    }

    private static byte[]?[] RenderAll(List<LabelledIcon> icons, int size, int maxDegreeOfParallelism, Action<string> log, CancellationToken cancellationToken)
    {
        var images = new byte[]?[icons.Count];
        var done = 0;
        var progressStep = Math.Max(1, icons.Count / 10);
        Parallel.For(0, icons.Count,
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxDegreeOfParallelism), CancellationToken = cancellationToken },
            i =>
            {
                // Each image lands at its own index, so the thread schedule cannot change the output.
                images[i] = TryRender(icons[i], size, log);
                var finished = Interlocked.Increment(ref done);
                if (finished % progressStep == 0 || finished == icons.Count)
                    log($"  rendered {finished}/{icons.Count}");
            });
        return images;
    }

    private static byte[]? TryRender(LabelledIcon icon, int size, Action<string> log)
    {
        try
        {
            var image = SvgIconRenderer.RenderChw(icon.Icon, size);
            // An all-white image means the renderer drew nothing; it would teach the model a blank "class member".
            return image.AsSpan().IndexOfAnyExcept((byte)255) < 0 ? null : image;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log($"warning: {icon.Key}: {e.GetType().Name}: {e.Message}");
            return null;
        }
    }

    private static string RendererDescription()
    {
        static string VersionOf(Assembly assembly) =>
            (assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
             ?? assembly.GetName().Version?.ToString() ?? "?").Split('+')[0];
        return $"Svg.Skia {VersionOf(typeof(Svg.Skia.SKSvg).Assembly)}, SkiaSharp {VersionOf(typeof(SkiaSharp.SKBitmap).Assembly)}";
    }

    private static string Sha256Hex(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>Collects one split's labels and pixels in record order.</summary>
    private sealed class SplitBuilder
    {
        private readonly List<int> _labels = [];
        private readonly List<byte[]> _images = [];

        public int Count => _labels.Count;

        public int CountOf(int label) => _labels.Count(l => l == label);

        public void Add(int label, byte[] image)
        {
            _labels.Add(label);
            _images.Add(image);
        }

        public void Write(string path, int size)
        {
            var imageBytes = FmdsFile.Channels * size * size;
            var pixels = new byte[_images.Count * imageBytes];
            for (var i = 0; i < _images.Count; i++)
                _images[i].CopyTo(pixels, i * imageBytes);
            FmdsFile.Write(path, size, size, _labels, pixels);
        }
    }
}
