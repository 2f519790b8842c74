using FractalMesh.Data;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>fractalmesh data …</c>: builds training datasets. Today one: <c>data emoji</c>, the Fluent Emoji Flat and Noto
/// Emoji icon sets rendered to small labelled RGB images (see <see cref="EmojiDatasetBuilder"/>).
/// </summary>
public static class DataCommand
{
    const string Usage = """
        fractalmesh data emoji [--out DIR] [--size 32|64] [--cache DIR] [--from-folder DIR]
          builds train.fmds, test.fmds and manifest.json from @iconify-json/fluent-emoji-flat and @iconify-json/noto
          --out DIR          output folder (default data/emoji32, or data/emoji64 with --size 64)
          --size 32|64       image side in pixels (default 32)
          --cache DIR        where npm tarballs are kept (default ~/.cache/fractalmesh/npm)
          --from-folder DIR  read extracted package folders (each with icons.json, metadata.json, package.json)
                             instead of running npm
        """;

    /// <summary>Runs the words that follow <c>data</c> on the command line, e.g. <c>["emoji", "--size", "64"]</c>.</summary>
    /// <returns>0 on success, 1 when the build fails, 2 for a usage mistake (printed as one line naming the argument).</returns>
    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            if (args.Length == 0)
                throw new UsageException("data: missing the dataset name (emoji); try 'data --help'");
            if (args[0] is "-h" or "--help" or "help")
            {
                Console.WriteLine(Usage);
                return 0;
            }
            return args[0] switch
            {
                "emoji" => await BuildEmojiAsync(new Options(args[1..])),
                _ => throw new UsageException($"data: unknown dataset '{args[0]}' (known: emoji)"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"fractalmesh: {e.Message}");
            return 2;
        }
    }

    static async Task<int> BuildEmojiAsync(Options o)
    {
        var sizeText = o.Get("size") ?? "32";
        if (!int.TryParse(sizeText, out var size) || !EmojiDatasetBuilder.SupportedSizes.Contains(size))
            throw new UsageException($"--size: '{sizeText}' is not one of {string.Join(", ", EmojiDatasetBuilder.SupportedSizes)}");
        var output = o.Get("out") ?? Path.Combine("data", $"emoji{size}");
        var cache = o.Get("cache");
        var sourceFolder = o.Get("from-folder");
        if (sourceFolder is not null && !Directory.Exists(sourceFolder))
            throw new UsageException($"--from-folder: {sourceFolder} is not a folder");
        RejectPositionalArguments(o);
        o.EnsureAllUsed();

        // Ctrl+C stops rendering between icons instead of killing the process mid-write.
        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancellation.Cancel(); };
        Console.CancelKeyPress += onCancel;
        EmojiDatasetResult result;
        try
        {
            result = await EmojiDatasetBuilder.BuildAsync(new EmojiDatasetOptions
            {
                OutputDirectory = output,
                ImageSize = size,
                CacheDirectory = cache,
                SourceFolder = sourceFolder,
                Log = Console.WriteLine,
            }, cancellation.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"fractalmesh: data emoji: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("fractalmesh: data emoji: cancelled");
            return 1;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        PrintSummary(result);
        return 0;
    }

    static void PrintSummary(EmojiDatasetResult result)
    {
        var manifest = result.Manifest;
        Console.WriteLine();
        Console.WriteLine($"emoji dataset: {manifest.ImageHeight}×{manifest.ImageWidth} RGB, {manifest.ClassNames.Count} classes");
        Console.WriteLine($"  {"label",5}  {"class",-18} {"train",6} {"test",5}");
        foreach (var count in manifest.Counts)
            Console.WriteLine($"  {count.Label,5}  {count.Name,-18} {count.Train,6} {count.Test,5}");
        Console.WriteLine($"  {"",5}  {"total",-18} {manifest.Counts.Sum(c => c.Train),6} {manifest.Counts.Sum(c => c.Test),5}");
        Console.WriteLine($"uncategorized (dropped): {manifest.Uncategorized.Count}; skipped (did not render): {manifest.Skipped.Count}");
        foreach (var source in manifest.Sources)
            Console.WriteLine($"source {source.Package}@{source.Version} ({source.License}): {source.Used} images");
        Console.WriteLine($"time: read {result.ReadTime.TotalSeconds:F1} s, render {result.RenderTime.TotalSeconds:F1} s, total {result.TotalTime.TotalSeconds:F1} s");
        Console.WriteLine($"wrote {result.TrainPath}, {result.TestPath}, {result.ManifestPath}");
    }

    /// <summary><c>data emoji</c> takes options only; a stray word is a usage error rather than silently ignored.</summary>
    static void RejectPositionalArguments(Options o)
    {
        string? stray = null;
        try { stray = o.Positional(0, "none"); }
        catch (UsageException) { /* none: as it should be */ }
        if (stray is not null)
            throw new UsageException($"data emoji: unexpected argument '{stray}'");
    }
}
