using System.CommandLine;
using FractalMesh.Data;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>fractalmesh data …</c>: builds training datasets. Today one: <c>data emoji</c>, the Fluent Emoji Flat, Noto
/// Emoji and Twemoji icon sets rendered to small labelled RGB images (see <see cref="EmojiDatasetBuilder"/>).
/// </summary>
public static class DataCommand
{
    /// <summary><c>data</c> and its datasets (today one: <c>emoji</c>).</summary>
    public static Command Create()
    {
        var size = new Option<int>("--size")
        {
            HelpName = "32|64", Description = "image side in pixels", DefaultValueFactory = _ => 32,
        };
        size.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && !EmojiDatasetBuilder.SupportedSizes.Contains(r.GetValueOrDefault<int>()))
                r.AddError($"--size: '{r.Tokens[0].Value}' is not one of {string.Join(", ", EmojiDatasetBuilder.SupportedSizes)}");
        });
        var output = CliOptions.Text("--out", "DIR", "output folder (default data/emoji32, or data/emoji64 with --size 64)");
        var cache = CliOptions.Text("--cache", "DIR", "where npm tarballs are kept (default ~/.cache/fractalmesh/npm)");
        var from = CliOptions.Text("--from-folder", "DIR",
            "read extracted package folders (each with icons.json, metadata.json, package.json) instead of running npm");
        var emoji = new Command("emoji", "build train.fmds, test.fmds and manifest.json from @iconify-json/fluent-emoji-flat, @iconify-json/noto and @iconify-json/twemoji")
        {
            output, size, cache, from,
        };
        emoji.SetAction((r, cancel) => BuildEmojiAsync(r.GetValue(size), r.GetValue(output), r.GetValue(cache), r.GetValue(from), cancel));
        return new Command("data", "build a training dataset (data emoji: the emoji set from npm)") { emoji };
    }

    static async Task<int> BuildEmojiAsync(int size, string? output, string? cache, string? sourceFolder, CancellationToken cancel)
    {
        output ??= Path.Combine("data", $"emoji{size}");
        if (sourceFolder is not null && !Directory.Exists(sourceFolder))
            throw new UsageException($"--from-folder: {sourceFolder} is not a folder");

        // Ctrl+C stops rendering between icons instead of killing the process mid-write.
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancel);
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
}
