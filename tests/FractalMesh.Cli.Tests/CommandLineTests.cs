using System.Globalization;
using FractalMesh.Cli.Commands;
using FractalMesh.Data;
using FractalMesh.Imaging;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Sampling;
using FractalMesh.Model.Config;
using Xunit;

namespace FractalMesh.Cli.Tests;

public sealed class CommandLineTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("fm-cli-").FullName;
    static string Case(string name) => Path.Combine(AppContext.BaseDirectory, "reference", "parity", name);

    public void Dispose() => Directory.Delete(dir, true);

    /// <summary>Runs the command line in this process with the console captured.</summary>
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var o = new StringWriter();
        using var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try { return (CommandLine.RunAsync(args).GetAwaiter().GetResult(), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    string TinyModel()
    {
        string path = Path.Combine(dir, "tiny.safetensors");
        if (!File.Exists(path))
            ModelCheckpoint.ConvertOfficial(Path.Combine(Case("tiny_mar"), "checkpoint-last.pth"),
                FractalConfig.FromJson(File.ReadAllText(Path.Combine(Case("tiny_mar"), "config.json"))), path);
        return path;
    }

    [Fact]
    public void BenchSamplesAloneAndReportsEveryLevelBesideAMatmul()
    {
        var (code, output, error) = Run("bench", "--model", TinyModel(), "--batches", "1,2", "--iters", "2,2", "--cfg", "2",
            "--no-training", "--repeats", "1", "--threads", "1");
        Assert.True(code == 0, error);
        Assert.DoesNotContain("training step", output);
        Assert.Matches(@"a 512×512 matmul runs at [0-9.]+ GFLOP/s", output);
        foreach (var level in new[] { "level 0", "level 1", "pixel head" })
            Assert.Matches(level + @" +\d+ passes, +[0-9.]+ rows each, +[0-9.]+ s in passes, +[0-9.]+ GFLOP, +[0-9.]+ GFLOP/s = \d+% of the matmul", output);
        Assert.Equal(2, output.Split('\n').Count(l => l.Contains(" images/s ")));
    }

    [Fact]
    public void BenchTimesTheTrainingStepInFloat32AndWithBFloat16ProductsInOneRun()
    {
        var (code, output, error) = Run("bench", "--model", TinyModel(), "--no-sampling", "--repeats", "1", "--threads", "1");
        Assert.True(code == 0, error);
        Assert.Matches(@"training step, batch 32: +[0-9.]+ s +\([0-9.]+ images/s", output);
        Assert.Matches(@"products in bfloat16 \(train --bf16\): [0-9.]+ s +\([0-9.]+ images/s; [0-9.]+× the float32 step\)", output);
        Assert.Matches(@"level-0 MLP product \(\d+×\d+\)·\(\d+×\d+\): [0-9.]+ GFLOP/s in float32, [0-9.]+ in bfloat16 \([0-9.]+×\)", output);
    }

    [Fact]
    public void TrainWithBFloat16ProductsSaysSoAndSavesFloat32Weights()
    {
        string train = ColourSplits();
        File.WriteAllText(Path.Combine(dir, "config.json"),
            """{"img_size_list":[16,4,1],"embed_dim_list":[32,16,16],"num_blocks_list":[1,1,1],"num_heads_list":[2,2,2],"generator_type_list":["mar","mar","ar"],"num_conds":5,"class_num":10}""");
        string run = Path.Combine(dir, "bf16-run");
        var (code, output, error) = Run("train", "--data", train, "--config", Path.Combine(dir, "config.json"), "--out", run,
            "--steps", "3", "--warmup", "1", "--batch", "4", "--no-samples", "--threads", "1", "--bf16");
        Assert.True(code == 0, error);
        Assert.Contains("; products in bfloat16)", output);
        Assert.Contains("3/3 loss", output);
        using var model = ModelCheckpoint.Load(FractalMesh.Training.Trainer.CheckpointPath(run));
        Assert.All(model.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.Float32, p.dtype));
    }

    [Theory]
    [InlineData("tiny_ar")]
    [InlineData("tiny_mar")]
    public void VerifyReferencePassesOnShippedCases(string name)
    {
        var (code, output, _) = Run("verify-reference", Case(name));
        Assert.Equal(0, code);
        Assert.Contains("passed, 0 failed", output);
        Assert.DoesNotContain("FAIL", output.Replace("0 failed", ""));
    }

    [Fact]
    public void VerifyReferenceFailsWhenAnExpectedTensorIsOff()
    {
        string copy = Path.Combine(dir, "case");
        Directory.CreateDirectory(copy);
        foreach (var f in new[] { "config.json", "checkpoint-last.pth" }) File.Copy(Path.Combine(Case("tiny_mar"), f), Path.Combine(copy, f));
        var (tensors, metadata) = SafeTensors.Read(Path.Combine(Case("tiny_mar"), "expected.safetensors"));
        var changed = tensors.Select(kv => kv.Key == "level1.out.2" ? new KeyValuePair<string, TorchSharp.torch.Tensor>(kv.Key, kv.Value + 1e-3f) : kv).ToList();
        SafeTensors.Write(Path.Combine(copy, "expected.safetensors"), changed, metadata);
        var (code, output, _) = Run("verify-reference", copy);
        Assert.Equal(1, code);
        Assert.Matches(@"level1\.out\.2\s+\S+\s+\S+\s+\S+\s+FAIL", output);
    }

    [Fact]
    public void GenerateWritesOnePngPerSeedAndAGrid()
    {
        var (code, output, err) = Run("generate", "--model", TinyModel(), "--class", "3,4", "--count", "2", "--seed", "10", "--cfg", "2", "--iters", "2,2", "--out", dir);
        Assert.True(code == 0, err);
        foreach (var seed in new[] { 10, 11, 12, 13 }) Assert.True(File.Exists(Path.Combine(dir, $"generate-seed{seed}.png")), output);
        Assert.Contains("generate-grid.png", output);
        var (pixels, w, h) = PngImage.Decode(File.ReadAllBytes(Path.Combine(dir, "generate-seed12.png")), "png");
        Assert.Equal((16, 16), (w, h));
        Assert.Equal(3 * 16 * 16, pixels.Length);
        var images = new[] { 10, 11, 12, 13 }.Select(seed => PngImage.Decode(File.ReadAllBytes(Path.Combine(dir, $"generate-seed{seed}.png")), "png").Planar).ToArray();
        int blank = images.Count(image => NearlyBlank.Is(image, 16, 16));
        Assert.Contains($"nearly blank (at least 90 % of pixels with every channel ≥ 235): {blank} of 4", output);
        double stray = images.Average(image => StrayPixels.Count(image, 16, 16));
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"stray pixels (unlike each of their 4 neighbours by more than 64 in a channel): {stray:F2} per image"), output);
    }

    /// <summary>train.fmds and test.fmds of 16×16 images in the tiny model's 10 classes, each class one flat colour; the training split's path.</summary>
    string ColourSplits()
    {
        foreach (var (name, count) in new[] { ("train", 300), ("test", 20) })
        {
            var labels = Enumerable.Range(0, count).Select(i => i % 10).ToArray();
            var pixels = new byte[count * 3 * 256];
            for (int i = 0; i < count; i++)
                for (int c = 0; c < 3; c++)
                    Array.Fill(pixels, (byte)((labels[i] * 25 + c * 80) % 256), (i * 3 + c) * 256, 256);
            FmdsFile.Write(Path.Combine(dir, $"{name}.fmds"), 16, 16, labels, pixels);
        }
        return Path.Combine(dir, "train.fmds");
    }

    [Fact]
    public void ClassifierTrainsReportsEachClassAndScoresGeneratedImages()
    {
        string train = ColourSplits();   // the command finds test.fmds beside it
        string classifier = Path.Combine(dir, "classifier.safetensors");
        var (code, output, err) = Run("classifier", "--data", train, "--out", classifier, "--epochs", "60", "--width", "8");
        Assert.True(code == 0, err);
        Assert.Contains("epoch 60/60", output);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(output, @"class 3 +2 of 2 +100\.0 %"), output);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(output, @"all +20 of 20 +100\.0 % +mean over classes 100\.0 %"), output);

        (code, output, err) = Run("generate", "--model", TinyModel(), "--class", "3,4", "--count", "3", "--iters", "2,2", "--out", dir, "--classifier", classifier);
        Assert.True(code == 0, err);
        var rows = System.Text.RegularExpressions.Regex.Matches(output, @"\n  (class \d) +(\d) of (\d) ");
        Assert.Equal(["class 3", "class 4"], rows.Select(m => m.Groups[1].Value));
        Assert.All(rows, m => Assert.Equal("3", m.Groups[3].Value));
        // The counts are the classifier's own predictions on the PNGs the command wrote.
        using var loaded = FractalMesh.Training.SampleClassifier.Load(classifier);
        var images = Enumerable.Range(0, 6).Select(seed => PngImage.Decode(File.ReadAllBytes(Path.Combine(dir, $"generate-seed{seed}.png")), "png").Planar).ToArray();
        var predicted = loaded.Predict(images.SelectMany(b => b).ToArray(), 6);
        Assert.Equal(predicted.Take(3).Count(p => p == 3).ToString(), rows[0].Groups[2].Value);
        Assert.Equal(predicted.Skip(3).Count(p => p == 4).ToString(), rows[1].Groups[2].Value);
    }

    [Theory]
    [InlineData("model", "not a FractalMesh classifier")]
    [InlineData("missing", "not found")]
    [InlineData("damaged", "not finite")]
    [InlineData("other size", "takes 32×32 images in 10 classes; the model makes 16×16")]
    [InlineData("unconditional", "--class -1 has no class")]
    public void GenerateRefusesWhatIsNotAClassifierNamingTheOptionBeforeSampling(string given, string message)
    {
        string path = given == "model" ? TinyModel() : Path.Combine(dir, given + ".safetensors");
        if (given is "damaged" or "other size" or "unconditional")
        {
            // One NaN weight (refused when loaded, in one line naming the option, not a stack trace), 32×32 images
            // for a 16×16 model, or a healthy classifier asked to score unconditional images.
            using var classifier = new FractalMesh.Training.SampleClassifier(given == "unconditional" ? 16 : 32, Enumerable.Range(0, 10).Select(i => $"class {i}").ToArray(), 8);
            if (given == "damaged")
                using (TorchSharp.torch.no_grad()) classifier.state_dict()["head.weight"][0, 0] = float.NaN;
            classifier.Save(path);
        }
        var (code, output, err) = Run("generate", "--model", TinyModel(), "--iters", "2,2", "--out", dir, "--classifier", path,
            "--class", given == "unconditional" ? "-1" : "2");
        Assert.Equal(2, code);
        Assert.Contains("--classifier", err);
        Assert.Contains(message, err);
        // Refused before a pixel is drawn: a wrong file costs no sampling time.
        Assert.DoesNotContain("level-0 step", output);
        Assert.False(File.Exists(Path.Combine(dir, "generate-grid.png")));
    }

    [Fact]
    public void GrowWritesADeeperModelThatDrawsTheSameImages()
    {
        string grown = Path.Combine(dir, "grown.safetensors");
        var (code, output, err) = Run("grow", TinyModel(), "--level", "0", "--blocks", "4", "--seed", "4", "--out", grown);
        Assert.True(code == 0, err);
        Assert.Contains("level 0 has 4 blocks (was 2)", output);
        var (before, after) = (ModelCheckpoint.ReadConfig(TinyModel()), ModelCheckpoint.ReadConfig(grown));
        Assert.Equal([4, .. before.Blocks[1..]], after.Blocks);
        foreach (var (model, folder) in new[] { (TinyModel(), "source"), (grown, "grown") })
        {
            var (generated, _, error) = Run("generate", "--model", model, "--class", "1,7", "--count", "2", "--seed", "3", "--cfg", "2", "--iters", "3,2",
                "--out", Path.Combine(dir, folder));
            Assert.True(generated == 0, error);
        }
        foreach (var seed in new[] { 3, 4, 5, 6 })
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "source", $"generate-seed{seed}.png")), File.ReadAllBytes(Path.Combine(dir, "grown", $"generate-seed{seed}.png")));
    }

    [Theory]
    [InlineData("--level", "3", "--blocks", "4", "--level: 3 is not a level of this model (0 to 2")]
    [InlineData("--level", "0", "--blocks", "1", "--blocks: level 0 already has 2 blocks")]
    public void GrowRefusesWhatItCannotDoNamingTheOption(string levelOption, string level, string blocksOption, string blocks, string message)
    {
        string output = Path.Combine(dir, "grown.safetensors");
        var (code, _, err) = Run("grow", TinyModel(), levelOption, level, blocksOption, blocks, "--out", output);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void ExportStoresRecommendedSettingsThatGenerateNamesAndAnotherExportKeeps()
    {
        string exported = Path.Combine(dir, "recommended.safetensors");
        var (code, output, err) = Run("export", TinyModel(), "--out", exported, "--half", "--recommend", "cfg=3,schedule=constant,temperature=1.1,filter=0.002");
        Assert.True(code == 0, err);
        Assert.Contains($"wrote {exported}", output);
        var expected = new RecommendedSampling(3f, "constant", 1.1f, "constant", 0.002f);
        Assert.Equal(expected, ModelCheckpoint.ReadRecommendedSampling(exported));
        Assert.Null(ModelCheckpoint.ReadRecommendedSampling(TinyModel()));

        string again = Path.Combine(dir, "again.safetensors");
        (code, _, err) = Run("export", exported, "--out", again);
        Assert.True(code == 0, err);
        Assert.Equal(expected, ModelCheckpoint.ReadRecommendedSampling(again));

        // generate names them when sampling otherwise, and says nothing when sampling at them.
        (code, output, err) = Run("generate", "--model", exported, "--class", "1", "--iters", "2,2", "--out", Path.Combine(dir, "official"));
        Assert.True(code == 0, err);
        Assert.Contains("the model recommends --cfg 3 --schedule constant --temperature 1.1 --filter 0.002 ", output);
        (code, output, err) = Run("generate", "--model", exported, "--class", "1", "--iters", "2,2", "--cfg", "3", "--schedule", "constant",
            "--temperature", "1.1", "--filter", "0.002", "--out", Path.Combine(dir, "recommended"));
        Assert.True(code == 0, err);
        Assert.DoesNotContain("recommends", output);
    }

    [Theory]
    [InlineData("cfg=0", "cfg: 0 is outside 1..50")]
    [InlineData("guidance=4", "guidance is not a setting")]
    [InlineData("schedule=cosine", "schedule: 'cosine' is not linear or constant")]
    [InlineData("filter=0", "filter: 0 is outside (0, 1]")]
    public void ExportRefusesABadRecommendationNamingTheOption(string settings, string message)
    {
        string output = Path.Combine(dir, "refused.safetensors");
        var (code, _, err) = Run("export", TinyModel(), "--out", output, "--recommend", settings);
        Assert.Equal(2, code);
        Assert.Contains("--recommend", err);
        Assert.Contains(message, err);
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("generate")]
    [InlineData("export")]
    [InlineData("grow")]
    public void AMalformedModelFileFailsWithOneLineNotAStackTrace(string command)
    {
        string bad = Path.Combine(dir, "bad.safetensors");
        File.WriteAllText(bad, "not a safetensors file");
        string output = Path.Combine(dir, "out.safetensors");
        string[] args = command switch
        {
            "generate" => ["generate", "--model", bad, "--out", dir],
            "export" => ["export", bad, "--out", output],
            _ => ["grow", bad, "--blocks", "4", "--out", output],
        };
        var (code, _, err) = Run(args);
        Assert.Equal(1, code);
        Assert.Contains("is not a valid safetensors file", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void InpaintKeepsUnmaskedPixelsByteForByte()
    {
        var rng = new Random(1);
        var image = new byte[3 * 16 * 16];
        rng.NextBytes(image);
        var mask = new byte[3 * 16 * 16];
        for (int i = 0; i < 256; i++) if (i % 16 >= 8) mask[i] = mask[256 + i] = mask[512 + i] = 255; // right half: generate
        File.WriteAllBytes(Path.Combine(dir, "in.png"), PngImage.Encode(image, 16, 16));
        File.WriteAllBytes(Path.Combine(dir, "mask.png"), PngImage.Encode(mask, 16, 16));
        var (code, _, err) = Run("inpaint", "--model", TinyModel(), "--image", Path.Combine(dir, "in.png"), "--mask", Path.Combine(dir, "mask.png"),
            "--class", "1", "--iters", "2,2", "--out", dir, "--seed", "5");
        Assert.True(code == 0, err);
        var (result, _, _) = PngImage.Decode(File.ReadAllBytes(Path.Combine(dir, "inpaint-seed5.png")), "png");
        int changed = 0;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 256; i++)
            {
                if (i % 16 < 8) Assert.Equal(image[c * 256 + i], result[c * 256 + i]);
                else if (image[c * 256 + i] != result[c * 256 + i]) changed++;
            }
        Assert.True(changed > 100);
    }

    [Theory]
    [InlineData("--class", "12", "--class")]
    [InlineData("--class", "dragons", "--class")]
    [InlineData("--iters", "2,2,2", "--iters")]
    [InlineData("--cfg", "abc", "--cfg")]
    [InlineData("--temperature", "-1", "--temperature")]
    [InlineData("--schedule", "cubic", "--schedule")]
    [InlineData("--device", "tpu", "--device")]
    [InlineData("--bogus", "1", "--bogus")]
    public void BadGenerateArgumentsExitTwoNamingTheArgument(string option, string value, string named)
    {
        var (code, _, err) = Run("generate", "--model", TinyModel(), option, value, "--out", dir);
        Assert.Equal(2, code);
        Assert.Contains(named, err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void InpaintMaskSizeMismatchAndUnreadablePngAreNamed()
    {
        File.WriteAllBytes(Path.Combine(dir, "in.png"), PngImage.Encode(new byte[3 * 16 * 16], 16, 16));
        File.WriteAllBytes(Path.Combine(dir, "small.png"), PngImage.Encode(new byte[3 * 8 * 8], 8, 8));
        File.WriteAllText(Path.Combine(dir, "bad.png"), "not a png");
        var (code, _, err) = Run("inpaint", "--model", TinyModel(), "--image", Path.Combine(dir, "in.png"), "--mask", Path.Combine(dir, "small.png"), "--class", "1");
        Assert.Equal(2, code);
        Assert.Contains("--mask", err);
        (code, _, err) = Run("inpaint", "--model", TinyModel(), "--image", Path.Combine(dir, "bad.png"), "--mask", Path.Combine(dir, "small.png"), "--class", "1");
        Assert.Equal(2, code);
        Assert.Contains("--image", err);
    }

    [Fact]
    public void EvalNllCodecsOnlyMeasuresBothBaselinesWithoutAModelAndMarksTheBest()
    {
        string split = Path.Combine(dir, "test.fmds");
        var pixels = new byte[4 * 3 * 16 * 16];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i % 3 == 0 ? 250 : i / 97 * 13);
        FmdsFile.Write(split, 16, 16, [0, 1, 0, 1], pixels);
        var (code, output, err) = Run("eval-nll", "--codecs-only", "--data", split, "--model", Path.Combine(dir, "none.safetensors"));
        Assert.True(code == 0, err);
        Assert.Contains("4 test images of 16×16, codecs only", output);
        Assert.DoesNotContain("FractalMesh (this model)", output);
        Assert.Matches(@"WebP lossless \(libwebp method 6, q100\)\s+\d\.\d{4}\s+\d\.\d{4}", output);
        Assert.Matches(@"PNG \(zlib 9, best of 60 trials\)\s+\d\.\d{4}\s+\d\.\d{4}", output);
        Assert.Single(output.Split('\n'), line => line.EndsWith("← best"));
        Assert.Contains("best: ", output);
        // The split names no classes, so the per-class rows go by label: two images each, WebP alone.
        var perClass = output.Split('\n').SkipWhile(l => !l.StartsWith("per class")).ToArray();
        Assert.Matches(@"^per class\s+images\s+WebP lossless$", perClass[0].TrimEnd());
        Assert.Matches(@"^0\s+2\s+\d\.\d{3} ± \d\.\d{3}$", perClass[1].TrimEnd());
        Assert.Matches(@"^1\s+2\s+\d\.\d{3} ± \d\.\d{3}$", perClass[2].TrimEnd());
    }

    [Fact]
    public void EvalNllClassTableNamesEachLabelAndGivesTheModelWebpAndTheirDifference()
    {
        var classes = new FractalMesh.Training.ClassLikelihood[]
        {
            new(0, new(1.5, 0.1, 48), new(1.9, 0.1, 48), new(-0.4, 0.05, 48)),
            new(8, new(2.25, double.NaN, 1), new(2.0, double.NaN, 1), new(0.25, double.NaN, 1)),
        };
        var lines = EvalNllCommand.ClassTable(classes, ["Smileys & Emotion", "People & Body"]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Matches(@"^per class\s+images\s+model\s+WebP lossless\s+model − WebP$", lines[0]);
        Assert.Matches(@"^0 Smileys & Emotion\s+48\s+1\.500 ± 0\.100\s+1\.900 ± 0\.100\s+-0\.400 ± 0\.050$", lines[1]);
        // Label 8 has no name in the list, and one image has no interval.
        Assert.Matches(@"^8\s+1\s+2\.250\s+2\.000\s+\+0\.250$", lines[2]);
    }

    [Fact]
    public void EvalNllTableMarksTheLowestMeanAndSaysWhenIntervalsOverlap()
    {
        var report = new FractalMesh.Training.LikelihoodReport(
            Model: new(1.90, 0.05, 23), Png: new(2.50, 0.07, 709), WebpLossless: new(2.03, 0.06, 709), Images: 709, Passes: 4);
        var lines = EvalNllCommand.Table(report).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("method", lines[0]);
        Assert.Equal(["FractalMesh", "WebP", "PNG"], lines[1..4].Select(l => l.Split(' ')[0]));
        Assert.EndsWith("← best", lines[1]);
        Assert.DoesNotContain("← best", lines[2] + lines[3]);
        Assert.Equal("best: FractalMesh (this model) at 1.9000 bits/dim", lines[4]);
        var close = EvalNllCommand.Table(report with { Model = new(2.05, 0.05, 23) }).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith("← best", close[2]);
        Assert.Contains("overlaps that of FractalMesh (this model)", close[4]);
        Assert.Equal(5, close.Length);   // no paired line without per-image differences

        var paired = EvalNllCommand.Table(report with { ModelMinusWebp = new(-0.13, 0.02, 709) }).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("paired, image by image: this model minus WebP lossless -0.1300 ± 0.0200 bits/dim (95%): the model is better", paired[5]);
        var tie = EvalNllCommand.Table(report with { ModelMinusWebp = new(-0.01, 0.02, 709) }).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith(": not told apart", tie[5]);
    }

    [Fact]
    public void GenerateHelpPrintsTheOptionsAndExitsZero()
    {
        var (code, output, error) = Run("generate", "--help");
        Assert.Equal(0, code);
        Assert.Equal("", error);
        foreach (var option in new[] { "--model", "--class", "--count", "--seed", "--cfg", "--schedule", "--temperature", "--temperature-schedule", "--filter", "--iters",
                     "--out", "--device", "--endpoint", "--rest", "--api-key" })
            Assert.Contains(option, output);
        Assert.Matches(@"--filter <X>\s+.*\[default: 0\.0001\]", output);
    }

    [Theory]
    [InlineData("bench")]
    [InlineData("train")]
    [InlineData("eval-nll")]
    [InlineData("data")]
    [InlineData("export")]
    [InlineData("grow")]
    [InlineData("classifier")]
    [InlineData("inpaint")]
    public void EveryCommandHasItsOwnHelp(string command)
    {
        var (code, output, _) = Run(command, "--help");
        Assert.Equal(0, code);
        Assert.Matches($@"\n  \S+ {command} [\[<]", output);   // the usage line (the root is named after the running program)
    }

    [Fact]
    public void TheTopLevelHelpListsEveryCommand()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        foreach (var command in new[] { "verify-reference", "convert", "export", "grow", "presets", "data", "train", "eval-nll", "classifier", "generate", "inpaint", "outpaint", "uncrop", "bench" })
            Assert.Contains($"  {command}", output);
        Assert.Equal(2, Run().Code);   // nothing asked: the same text, and a usage error
    }

    [Fact]
    public void TheReadmeShowsWhatHelpPrints()
    {
        var (_, output, _) = Run("--help");
        // The root command is named after the running program: the test host here, fractalmesh for users.
        var program = System.Text.RegularExpressions.Regex.Match(output, @"Usage:\n  (\S+) ").Groups[1].Value;
        string help = output.Replace($"  {program} [command]", "  fractalmesh [command]").TrimEnd();
        string readme = File.ReadAllText(Path.Combine(TestPaths.RepositoryRoot, "README.md"));
        int start = readme.IndexOf("```text\n", readme.IndexOf("## The command line", StringComparison.Ordinal), StringComparison.Ordinal) + "```text\n".Length;
        Assert.Equal(help, readme[start..readme.IndexOf("\n```", start, StringComparison.Ordinal)]);
    }

    [Fact]
    public void AnUnknownOptionExitsTwoNamingIt()
    {
        var (code, output, error) = Run("generate", "--model", TinyModel(), "--no-such-option", "--out", dir);
        Assert.Equal(2, code);
        Assert.Contains("--no-such-option", error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Equal("", output);
    }

    [Fact]
    public void ASeedAboveTwoToThe32IsAcceptedAndNamesTheImages()
    {
        const long seed = (1L << 32) + 3;
        var (code, output, err) = Run("generate", "--model", TinyModel(), "--class", "1", "--count", "2", "--seed", seed.ToString(), "--iters", "1,1", "--out", dir);
        Assert.True(code == 0, err);
        Assert.Contains($"seed {seed + 1}", output);
        Assert.True(File.Exists(Path.Combine(dir, $"generate-seed{seed + 1}.png")), output);
        (code, _, err) = Run("generate", "--model", TinyModel(), "--seed", "99999999999999999999", "--out", dir);
        Assert.Equal(2, code);
        Assert.Contains("--seed", err);
    }

    [Fact]
    public void UnknownCommandAndMissingModelExitTwo()
    {
        Assert.Equal(2, Run("paint").Code);
        var (code, _, err) = Run("generate", "--model", Path.Combine(dir, "none.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("--model", err);
    }
}
