using FractalMesh.Data;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using TorchSharp;
using Xunit;

namespace FractalMesh.Training.Tests;

public sealed class SampleClassifierTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("fm-classifier-").FullName;

    public void Dispose() => Directory.Delete(folder, true);

    /// <summary>8×8 images in three classes: a red, a green and a blue square on white, at a position that varies.</summary>
    static (byte[] Pixels, int[] Labels) Squares(int count, int seed)
    {
        var random = new Random(seed);
        var pixels = new byte[count * 3 * 64];
        Array.Fill(pixels, (byte)255);
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % 3;
            int x0 = random.Next(0, 4), y0 = random.Next(0, 4);
            for (int y = y0; y < y0 + 4; y++)
                for (int x = x0; x < x0 + 4; x++)
                    for (int c = 0; c < 3; c++)
                        pixels[(i * 3 + c) * 64 + y * 8 + x] = (byte)(c == labels[i] ? 220 : random.Next(0, 40));
        }
        return (pixels, labels);
    }

    ImageDataset Split(string name, int count, int seed)
    {
        var (pixels, labels) = Squares(count, seed);
        string path = Path.Combine(folder, name);
        FmdsFile.Write(path, 8, 8, labels, pixels);
        return ImageDataset.Load(path);
    }

    static readonly ClassifierOptions Quick = new() { Epochs = 30, Batch = 8, Width = 8, LearningRate = 3e-3 };

    [Fact]
    public void LearnsTheClassesAndReadsBackFromItsFileWithTheSamePredictions()
    {
        var train = Split("train.fmds", 48, 1);
        var test = Split("test.fmds", 30, 2);
        using var classifier = SampleClassifier.Train(train, Quick);
        var predicted = classifier.Predict(test.Pixels, test.Count);
        var rows = SampleClassifier.Agreement(predicted, test.Labels, 3);
        Assert.Equal([(10, 10), (10, 10), (10, 10)], rows);

        string path = Path.Combine(folder, "classifier.safetensors");
        classifier.Save(path);
        using var loaded = SampleClassifier.Load(path);
        Assert.Equal(["class 0", "class 1", "class 2"], loaded.ClassNames);
        Assert.Equal((8, 8), (loaded.ImageSize, loaded.Width));
        Assert.Equal(predicted, loaded.Predict(test.Pixels, test.Count));
    }

    [Fact]
    public void AnUntrainedClassifierDoesNotAgreeWithEveryLabel()
    {
        // The agreement the test above checks is learned, not an artefact of how it is counted.
        var test = Split("test.fmds", 30, 2);
        using var untrained = SampleClassifier.Train(Split("train.fmds", 48, 1), Quick with { Epochs = 1, LearningRate = 1e-9 });
        var rows = SampleClassifier.Agreement(untrained.Predict(test.Pixels, test.Count), test.Labels, 3);
        Assert.True(rows.Sum(r => r.Agreed) < 30, string.Join(", ", rows));
    }

    [Fact]
    public void AgreementCountsEachWantedClassApart()
    {
        var rows = SampleClassifier.Agreement([0, 1, 1, 2, 0], [0, 1, 2, 2, 1], 4);
        Assert.Equal([(1, 1), (1, 2), (1, 2), (0, 0)], rows);
        Assert.Throws<ArgumentException>(() => SampleClassifier.Agreement([0], [0, 1], 2));
    }

    [Fact]
    public void TrainingAndPredictingLeaveNothingAlive()
    {
        var train = Split("train.fmds", 24, 1);
        using var classifier = new SampleClassifier(8, ["red", "green", "blue"], 8);
        TorchSharp.DisposeScopeManager.Statistics.Reset();
        for (int round = 0; round < 2; round++)
        {
            classifier.Fit(train, Quick with { Epochs = 2 });
            classifier.Predict(train.Pixels, train.Count);
        }
        Assert.Equal(0, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void ConstructingAndDisposingLeavesNothingAlive()
    {
        TorchSharp.DisposeScopeManager.Statistics.Reset();
        new SampleClassifier(8, ["red", "green", "blue"], 8).Dispose();
        Assert.Equal(0, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void LoadRefusesAGenerativeModelNamingTheFormat()
    {
        string path = Path.Combine(folder, "model.safetensors");
        using (var model = new FractalModel(TrainingFixture.Config)) ModelCheckpoint.Save(model, path);
        var error = Assert.Throws<InvalidDataException>(() => SampleClassifier.Load(path));
        Assert.Contains("not a FractalMesh classifier", error.Message);
        Assert.Contains(ModelCheckpoint.FormatName, error.Message);
    }

    [Fact]
    public void PredictRefusesBytesOfTheWrongSize()
    {
        using var classifier = new SampleClassifier(8, ["a", "b"], 8);
        Assert.Throws<ArgumentException>(() => classifier.Predict(new byte[3 * 64 * 2 - 1], 2));
    }

    [Fact]
    public void NonFiniteLogitsAreRefusedNotCountedAsClassZero()
    {
        using var classifier = new SampleClassifier(8, ["a", "b"], 8);
        using (TorchSharp.torch.no_grad())
            foreach (var parameter in classifier.parameters()) parameter.fill_(float.NaN);
        var error = Assert.Throws<InvalidDataException>(() => classifier.Predict(new byte[3 * 64 * 2], 2));
        Assert.Contains("not finite", error.Message);
    }

    [Fact]
    public void AnEmptyBatchGivesNoLogits()
    {
        using var classifier = new SampleClassifier(8, ["a", "b"], 8);
        using var images = TorchSharp.torch.zeros(0, 3, 8, 8);
        using var logits = classifier.call(images);
        Assert.Equal([0L, 2L], logits.shape);
    }

    [Fact]
    public void LoadRefusesNonFiniteWeightsNamingTheTensor()
    {
        string path = Path.Combine(folder, "damaged.safetensors");
        using (var classifier = new SampleClassifier(8, ["a", "b"], 8))
        {
            using (TorchSharp.torch.no_grad()) classifier.state_dict()["head.bias"][1] = float.PositiveInfinity;
            classifier.Save(path);
        }
        var error = Assert.Throws<InvalidDataException>(() => SampleClassifier.Load(path));
        Assert.Contains("head.bias", error.Message);
        Assert.Contains("not finite", error.Message);
    }

    /// <summary>
    /// The convolutions compute what they should: the float32 logits agree with a float64 copy's. With libtorch 2.10's
    /// <c>Conv2d</c> they did not on this repository's CPU machine (AVX-512) wherever a convolution's input channels were
    /// above 16 and not a multiple of 16: width 24's second convolution (24 → 48) was off by about 3 on outputs of about 7,
    /// and sometimes NaN.
    /// </summary>
    [Theory]
    [InlineData(24)]
    [InlineData(20)]
    [InlineData(16)]
    public void ItsConvolutionsAgreeWithAFloat64Copy(int width)
    {
        using var classifier = new SampleClassifier(16, ["a", "b", "c"], width);
        using var copy = new SampleClassifier(16, ["a", "b", "c"], width);
        copy.load_state_dict(classifier.state_dict());
        copy.to(TorchSharp.torch.ScalarType.Float64);
        classifier.eval();
        copy.eval();
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var _ = TorchSharp.torch.no_grad();
        TorchSharp.torch.manual_seed(5);
        var images = TorchSharp.torch.randn(32, 3, 16, 16);
        var single = classifier.call(images).to_type(TorchSharp.torch.ScalarType.Float64);
        var @double = copy.call(images.to_type(TorchSharp.torch.ScalarType.Float64));
        double error = (single - @double).abs().max().item<double>(), scale = @double.abs().max().item<double>();
        Assert.True(error <= 1e-5 * (1 + scale), $"float32 logits differ from float64 by {error} (largest {scale})");
    }

    [Theory]
    [InlineData(6, 2, 8)]    // two 2× poolings need a multiple of 4
    [InlineData(8, 1, 8)]    // one class is nothing to tell apart
    [InlineData(8, 2, 0)]    // no channels
    public void RefusesWhatItCannotBe(int size, int classes, int width) =>
        Assert.ThrowsAny<ArgumentException>(() => new SampleClassifier(size, Enumerable.Range(0, classes).Select(k => $"c{k}").ToArray(), width));
}
