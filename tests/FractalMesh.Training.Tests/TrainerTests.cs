using FractalMesh.Data;
using FractalMesh.Model;
using FractalMesh.Model.Checkpoints;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Training.Tests;

public class TrainerTests
{
    static TrainerOptions Options(TrainingFixture f, string run, int total, int? maxThisRun = null) => new()
    {
        TrainSplit = f.TrainSplit, OutputDir = Path.Combine(f.Folder, run), Preset = "test", BatchSize = 8,
        TotalSteps = total, WarmupSteps = 2, LearningRate = 3e-3, MaxStepsThisRun = maxThisRun, CheckpointMinutes = 1000,
        Config = TrainingFixture.Config,
    };

    [Fact]
    public void LossOfATinyBatchGoesDown()
    {
        using var f = new TrainingFixture();
        using var trainer = new Trainer(Options(f, "down", 60) with { Dropout = 0 });
        var losses = new List<double>();
        trainer.Run(CancellationToken.None, r => losses.Add(r.Loss));
        Assert.Equal(60, losses.Count);
        Assert.True(losses.TakeLast(10).Average() < losses.Take(5).Average() - 1.0,
            $"first {losses.Take(5).Average():F3}, last {losses.TakeLast(10).Average():F3}");
    }

    [Fact]
    public void BFloat16ProductsTrainAsFloat32DoesAndChangeOnlyTheRoundingOfTheSteps()
    {
        using var f = new TrainingFixture();
        var runs = new Dictionary<bool, List<double>>();
        foreach (bool bf16 in new[] { false, true })
        {
            using var trainer = new Trainer(Options(f, $"bf16-{bf16}", 60) with { Dropout = 0, BFloat16Matmuls = bf16 });
            var mlps = trainer.Model.modules().OfType<FractalMesh.Model.Modules.Mlp>().ToList();
            Assert.NotEmpty(mlps);
            Assert.All(mlps, m => Assert.Equal(bf16 ? ScalarType.BFloat16 : null, m.MatmulType));
            runs[bf16] = [];
            trainer.Run(CancellationToken.None, r => runs[bf16].Add(r.Loss));
        }
        double exact = runs[false].TakeLast(10).Average(), mixed = runs[true].TakeLast(10).Average();
        Assert.True(mixed < runs[true].Take(5).Average() - 1.0, $"bfloat16 products: first {runs[true].Take(5).Average():F3}, last {mixed:F3}");
        Assert.True(Math.Abs(mixed - exact) < 0.1 * exact, $"last ten steps: {mixed:F3} with bfloat16 products, {exact:F3} in float32");
        Assert.NotEqual(runs[false], runs[true]);           // the products did run in bfloat16
        // The weights are stored in float32 either way.
        using var model = ModelCheckpoint.Load(Trainer.CheckpointPath(Path.Combine(f.Folder, "bf16-True")));
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
    }

    [Fact]
    public void KilledAndResumedRunEndsWithTheSameWeightsAsAnUninterruptedOne()
    {
        using var f = new TrainingFixture();
        using (var straight = new Trainer(Options(f, "straight", 12))) straight.Run(CancellationToken.None);
        using (var first = new Trainer(Options(f, "resumed", 12, maxThisRun: 5))) first.Run(CancellationToken.None);
        using (var second = new Trainer(Options(f, "resumed", 12)))
        {
            Assert.Equal(5, second.Step);
            second.Run(CancellationToken.None);
        }
        using var a = ModelCheckpoint.Load(Trainer.CheckpointPath(Path.Combine(f.Folder, "straight")));
        using var b = ModelCheckpoint.Load(Trainer.CheckpointPath(Path.Combine(f.Folder, "resumed")));
        var sa = a.state_dict();
        var sb = b.state_dict();
        foreach (var key in sa.Keys)
        {
            using var eq = sa[key].eq(sb[key]).all();
            Assert.True(eq.item<bool>(), key);
        }
        Assert.Equal(File.ReadAllLines(Path.Combine(f.Folder, "straight", "log.csv")).Length,
            File.ReadAllLines(Path.Combine(f.Folder, "resumed", "log.csv")).Length);
    }

    [Fact]
    public void RedWeightAndFlipsOverrideTheRecipeAndTheRedWeightIsStored()
    {
        using var f = new TrainingFixture();
        // An image that a flip changes: left half dark, right half light, in every channel.
        var pixels = new byte[8 * 3 * 64];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i % 8 < 4 ? 10 : 240);
        FmdsFile.Write(f.TrainSplit, 8, 8, Enumerable.Repeat(0, 8).ToArray(), pixels);
        using var original = Pixels.Normalize(tensor(pixels, ScalarType.Byte).reshape(8, 3, 8, 8));

        using (var plain = new Trainer(Options(f, "plain", 2) with { RedWeight = 1, Flips = false }))
        {
            Assert.Equal(1.0, plain.Model.Config.RWeight);
            for (int step = 0; step < 4; step++)
            {
                var (images, labels) = plain.Batch(step);
                using (images) using (labels) Assert.True(Same(images, original), $"step {step} flipped an image");
            }
            plain.Run(CancellationToken.None);
        }
        Assert.Equal(1.0, ModelCheckpoint.ReadConfig(Trainer.CheckpointPath(Path.Combine(f.Folder, "plain"))).RWeight);

        using var official = new Trainer(Options(f, "official", 2));
        Assert.Equal(5.0, official.Model.Config.RWeight);
        var flipped = Enumerable.Range(0, 4).Sum(step =>
        {
            var (images, labels) = official.Batch(step);
            using (images) using (labels) return Same(images, original) ? 0 : 1;
        });
        Assert.True(flipped > 0, "four batches of the official recipe flipped no image");

        static bool Same(Tensor a, Tensor b)
        {
            using var equal = a.eq(b);
            using var all = equal.all();
            return all.item<bool>();
        }
    }

    [Theory]
    [InlineData(0.0, 90, 10)]
    [InlineData(0.5, 75, 25)]
    [InlineData(1.0, 50, 50)]
    public void ClassBalanceDrawsEachClassInProportionToItsCountToThePowerOneMinusTheBalance(double balance, int majority, int minority)
    {
        // 90 images of class 3, 10 of class 7: shares 90:10 as they are, 3:1 (√90 : √10) at 0.5, 1:1 at 1.
        int[] labels = Enumerable.Range(0, 100).Select(i => i % 10 == 0 ? 7 : 3).ToArray();
        var draws = Trainer.BalancedDraw(labels, balance, new Random(1));
        Assert.Equal(labels.Length, draws.Length);
        Assert.Equal(majority, draws.Count(i => labels[i] == 3));
        Assert.Equal(minority, draws.Count(i => labels[i] == 7));
        // Within a class every image is drawn equally often, give or take one.
        foreach (int label in new[] { 3, 7 })
        {
            var perImage = Enumerable.Range(0, labels.Length).Where(i => labels[i] == label).Select(i => draws.Count(d => d == i)).ToArray();
            Assert.True(perImage.Max() - perImage.Min() <= 1, $"class {label}: drawn {perImage.Min()} to {perImage.Max()} times");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Trainer.BalancedDraw(labels, 1.5, new Random(1)));
    }

    [Fact]
    public void ABalancedRunTrainsOnTheBalancedDrawsAndTheSameStepAlwaysGetsTheSameBatch()
    {
        using var f = new TrainingFixture();
        // 12 images, 10 of class 0 and 2 of class 1, each with its own grey level, so a batch's pixels name its images.
        var pixels = new byte[12 * 3 * 64];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i / 192 * 20);
        FmdsFile.Write(f.TrainSplit, 8, 8, [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0], pixels);
        // A batch of 12 is one epoch: balanced, 6 draws of each class; as the data is, 2 of class 1.
        var options = Options(f, "balanced", 6) with { ClassBalance = 1, Flips = false, BatchSize = 12 };
        using (var balanced = new Trainer(options))
        using (var again = new Trainer(options))
        {
            for (int step = 0; step < 3; step++)
            {
                var (images, labels) = balanced.Batch(step);
                var (imagesAgain, labelsAgain) = again.Batch(step);
                using (images) using (labels) using (imagesAgain) using (labelsAgain)
                {
                    Assert.Equal(6, labels.data<long>().Count(l => l == 1));
                    using var same = images.eq(imagesAgain);
                    using var all = same.all();
                    Assert.True(all.item<bool>(), $"step {step} drew another batch the second time");
                }
            }
        }
        using var natural = new Trainer(options with { ClassBalance = 0, OutputDir = Path.Combine(f.Folder, "natural") });
        var (naturalImages, naturalLabels) = natural.Batch(0);
        using (naturalImages) using (naturalLabels) Assert.Equal(2, naturalLabels.data<long>().Count(l => l == 1));
    }

    [Fact]
    public void MissingDatasetGetsAClearError()
    {
        using var f = new TrainingFixture();
        var e = Assert.Throws<FileNotFoundException>(() => new Trainer(Options(f, "x", 1) with { TrainSplit = Path.Combine(f.Folder, "nope.fmds") }));
        Assert.Contains("nope.fmds", e.Message);
    }

    [Fact]
    public void CorruptCheckpointGetsAClearError()
    {
        using var f = new TrainingFixture();
        string path = Path.Combine(f.Folder, "corrupt.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(path));
        Assert.Contains("corrupt.safetensors", e.Message);
    }

    [Fact]
    public void EvalNllOfABatchEqualsTheModelsOwnLossInBits()
    {
        using var f = new TrainingFixture(images: 8);
        using var model = new FractalMesh.Model.Modules.FractalModel(TrainingFixture.Config);
        var data = ImageDataset.Load(f.TrainSplit);
        var report = LikelihoodEvaluator.Evaluate(model, data, passes: 1, batchSize: 8, limit: null, seed: 3);
        manual_seed(3);
        model.eval();
        using var _ = no_grad();
        using var images = Pixels.Normalize(tensor(data.Pixels, dtype: ScalarType.Byte).reshape(8, 3, 8, 8));
        using var labels = tensor(data.Labels.Select(l => (long)l).ToArray());
        using var loss = model.Loss(images, labels);
        Assert.Equal(loss.item<float>() / Math.Log(2), report.Model!.Value.Mean, 5);
        Assert.Equal(8, report.Model.Value.Samples);   // the interval is over images, not batches
        Assert.True(report.Png.Mean > 0 && report.WebpLossless.Mean > 0);
        Assert.Equal(report.Model.Value.Mean - report.WebpLossless.Mean, report.ModelMinusWebp!.Value.Mean, 9);
        // Per class: the fixture's labels alternate, so each class has 4 images and the two means average to the whole's.
        Assert.Equal([0, 1], report.PerClass!.Select(c => c.Label));
        Assert.All(report.PerClass!, c => Assert.Equal(4, c.Model!.Value.Samples));
        Assert.Equal(report.Model.Value.Mean, report.PerClass!.Average(c => c.Model!.Value.Mean), 9);
        Assert.Equal(report.WebpLossless.Mean, report.PerClass!.Average(c => c.WebpLossless.Mean), 9);
        Assert.All(report.PerClass!, c => Assert.Equal(c.Model!.Value.Mean - c.WebpLossless.Mean, c.ModelMinusWebp!.Value.Mean, 9));
        Assert.NotEqual(report.PerClass![0].Model!.Value.Mean, report.PerClass[1].Model!.Value.Mean);
    }
}

public class TrainerLifetimeTests
{
    [Fact]
    public void TrainingStepsLeaveNoLiveTensorsBehind()
    {
        using var f = new TrainingFixture();
        var options = new TrainerOptions
        {
            TrainSplit = f.TrainSplit, OutputDir = Path.Combine(f.Folder, "leak"), BatchSize = 8, TotalSteps = 40, WarmupSteps = 2,
            CheckpointMinutes = 1000, Config = TrainingFixture.Config, MaxStepsThisRun = 5,
        };
        using var trainer = new Trainer(options);
        trainer.Run(CancellationToken.None);                 // optimizer state and gradients exist from here on
        TorchSharp.DisposeScopeManager.Statistics.Reset();
        using var more = new Trainer(options with { MaxStepsThisRun = 20 });
        TorchSharp.DisposeScopeManager.Statistics.Reset();
        more.Run(CancellationToken.None);
        long afterTwenty = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        more.Run(CancellationToken.None);
        Assert.Equal(afterTwenty, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
