using System.CommandLine;
using System.Diagnostics;
using FractalMesh.Data;
using FractalMesh.Training;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>classifier</c>: trains the small network that scores generated samples (<c>generate --classifier</c>) and reports
/// how well it tells the test split's classes apart, the ceiling for any sample's score.
/// </summary>
public static class ClassifierCommand
{
    public static Command Create()
    {
        var data = CliOptions.Text("--data", "FILE", "the training split", "data/emoji32/train.fmds");
        var test = CliOptions.Text("--test", "FILE", "the test split it is checked on (default test.fmds beside --data)");
        var output = CliOptions.Required("--out", "FILE", "where to write the classifier (.safetensors)");
        var epochs = CliOptions.Int("--epochs", "passes over the training split", new ClassifierOptions().Epochs, min: 1, max: 1000);
        var width = CliOptions.Int("--width", "channels of the first convolutions (then 2× and 4×)", new ClassifierOptions().Width, min: 1, max: 512);
        var seed = CliOptions.Int("--seed", "seed of the weights and the image order", 0, min: 0);
        var command = new Command("classifier",
            "train a small image classifier on a dataset's classes, to score generated samples (generate --classifier); prints its test accuracy per class")
            { data, test, output, epochs, width, seed };
        command.SetAction(r => Run(r.GetValue(data)!, r.GetValue(test), r.GetValue(output)!,
            new ClassifierOptions { Epochs = r.GetValue(epochs), Width = r.GetValue(width), Seed = r.GetValue(seed) }));
        return command;
    }

    static int Run(string dataPath, string? testPath, string output, ClassifierOptions options)
    {
        testPath ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(dataPath))!, "test.fmds");
        if (!File.Exists(dataPath)) throw new UsageException($"--data: {dataPath} not found");
        if (!File.Exists(testPath)) throw new UsageException($"--test: {testPath} not found");
        var train = ImageDataset.Load(dataPath);
        var test = ImageDataset.Load(testPath);
        if (test.Height != train.Height || test.Width != train.Width || !test.ClassNames.SequenceEqual(train.ClassNames))
            throw new UsageException($"--test: {testPath} does not match {dataPath} (size or class names differ)");
        int classes = SampleClassifier.ClassNamesOf(train).Count;
        if (test.Labels.Any(label => label >= classes))
            throw new UsageException($"--test: {testPath} has label {test.Labels.Max()}, the training split {classes} classes");
        Console.WriteLine($"classifier of width {options.Width} on {train.Count} images of {train.Width}×{train.Height}, {classes} classes, {options.Epochs} epochs");
        var timer = Stopwatch.StartNew();
        using var classifier = SampleClassifier.Train(train, options,
            (epoch, loss) => Console.WriteLine($"  epoch {epoch}/{options.Epochs}  loss {loss:F4}  {timer.Elapsed.TotalSeconds:F0}s"));
        classifier.Save(output);
        var predicted = classifier.Predict(test.Pixels, test.Count);
        Console.WriteLine($"on the test split ({test.Count} images):");
        PrintAgreement(SampleClassifier.Agreement(predicted, test.Labels, classifier.ClassNames.Count), classifier.ClassNames);
        Console.WriteLine($"wrote {output}");
        return 0;
    }

    /// <summary>Prints each class's agreement, then all images' and the mean over classes (balanced).</summary>
    public static void PrintAgreement((int Agreed, int Total)[] rows, IReadOnlyList<string> names)
    {
        int nameWidth = Math.Max(5, names.Max(n => n.Length));
        foreach (var (row, k) in rows.Select((row, k) => (row, k)).Where(x => x.row.Total > 0))
            Console.WriteLine($"  {names[k].PadRight(nameWidth)}  {row.Agreed,5} of {row.Total,-5} {100.0 * row.Agreed / row.Total,5:F1} %");
        var present = rows.Where(r => r.Total > 0).ToArray();
        int agreed = present.Sum(r => r.Agreed), total = present.Sum(r => r.Total);
        Console.WriteLine($"  {"all".PadRight(nameWidth)}  {agreed,5} of {total,-5} {100.0 * agreed / total,5:F1} %   mean over classes {present.Average(r => 100.0 * r.Agreed / r.Total):F1} %");
    }
}
