using System.Text.Json;
using FractalMesh.Data;
using FractalMesh.Model;
using FractalMesh.Model.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FractalMesh.Training;

/// <summary>How <see cref="SampleClassifier.Train"/> trains.</summary>
public sealed record ClassifierOptions
{
    /// <summary>Passes over the training split.</summary>
    public int Epochs { get; init; } = 16;

    /// <summary>Images per step.</summary>
    public int Batch { get; init; } = 64;

    /// <summary>AdamW's learning rate, constant after a linear warm-up over the first epoch, then cosine to zero.</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Channels of the first convolutions; the next stages have twice and four times as many.</summary>
    public int Width { get; init; } = 24;

    /// <summary>Seeds the weights and the order of the images.</summary>
    public int Seed { get; init; }
}

/// <summary>
/// A small convolutional network that tells a dataset's classes apart. It is an instrument, not part of the generative
/// model: trained on the training split and checked on the test split, it scores how often generated samples look like
/// the class they were asked for (a proxy for "a person recognises them", which leans on colour as much as on shape).
/// </summary>
public sealed class SampleClassifier : Module<Tensor, Tensor>
{
    /// <summary>The <c>format</c> metadata value of a saved classifier.</summary>
    public const string FormatName = "fractalmesh-classifier-v1";

    readonly Sequential features;
    readonly Linear head;

    /// <summary>The side of the square images it takes.</summary>
    public int ImageSize { get; }

    /// <summary>The class names, in label order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Channels of the first stage.</summary>
    public int Width { get; }

    public SampleClassifier(int imageSize, IReadOnlyList<string> classNames, int width = 24) : base(nameof(SampleClassifier))
    {
        if (imageSize < 4 || imageSize % 4 != 0) throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, "a multiple of 4, at least 4 (two 2× poolings)");
        if (classNames.Count < 2) throw new ArgumentException("at least two classes", nameof(classNames));
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "at least 1");
        (ImageSize, ClassNames, Width) = (imageSize, classNames.ToArray(), width);
        // The parameters are made in a scope (initialising them in place returns tensors nobody keeps) and detached from it
        // to live with the module.
        using var scope = NewDisposeScope();
        features = Sequential(
            new Conv3x3(3, width), ReLU(), MaxPool2d(2),                                                                       // (B, w, S/2, S/2)
            new Conv3x3(width, 2 * width), ReLU(), new Conv3x3(2 * width, 2 * width), ReLU(), MaxPool2d(2),                    // (B, 2w, S/4, S/4)
            new Conv3x3(2 * width, 4 * width), ReLU(), new Conv3x3(4 * width, 4 * width), ReLU(),
            AdaptiveAvgPool2d(1), Flatten());                                                                                  // (B, 4w)
        head = Linear(4 * width, classNames.Count);
        RegisterComponents();
        scope.Detach(parameters());
    }

    /// <summary>Normalized images (B, 3, S, S) → class logits (B, classes).</summary>
    public override Tensor forward(Tensor images) => head.call(features.call(images));

    /// <summary>The most likely class of each of <paramref name="count"/> planar 3×S×S byte images, in order.</summary>
    public int[] Predict(ReadOnlySpan<byte> planarImages, int count)
    {
        int imageBytes = 3 * ImageSize * ImageSize;
        if (planarImages.Length != count * imageBytes)
            throw new ArgumentException($"expected {count} images of 3×{ImageSize}×{ImageSize} bytes ({count * imageBytes}), got {planarImages.Length}", nameof(planarImages));
        var labels = new int[count];
        bool training = this.training;
        eval();
        try
        {
            using var _ = no_grad();
            const int batch = 256;
            for (int start = 0; start < count; start += batch)
            {
                int n = Math.Min(batch, count - start);
                using var scope = NewDisposeScope();
                var bytes = tensor(planarImages.Slice(start * imageBytes, n * imageBytes).ToArray(), dtype: ScalarType.Byte).reshape(n, 3, ImageSize, ImageSize);
                var logits = forward(Pixels.Normalize(bytes));
                // NaN logits would all read as class 0: a count is refused rather than skewed. Its weights are finite (Load
                // checks), so this is the backend computing wrongly (as libtorch's conv2d once did here): said in one line.
                if (!logits.isfinite().all().item<bool>())
                    throw new InvalidDataException($"the classifier's logits are not finite for images {start}-{start + n - 1}; its counts would be wrong");
                var predicted = logits.argmax(1).data<long>().ToArray();
                for (int i = 0; i < n; i++) labels[start + i] = (int)predicted[i];
            }
        }
        finally { train(training); }
        return labels;
    }

    /// <summary>For each class, how many of the images wanted as that class were predicted as it, of how many.</summary>
    public static (int Agreed, int Total)[] Agreement(IReadOnlyList<int> predicted, IReadOnlyList<int> wanted, int classes)
    {
        if (predicted.Count != wanted.Count) throw new ArgumentException($"{predicted.Count} predictions for {wanted.Count} images", nameof(predicted));
        var rows = new (int Agreed, int Total)[classes];
        for (int i = 0; i < wanted.Count; i++)
        {
            rows[wanted[i]].Total++;
            if (predicted[i] == wanted[i]) rows[wanted[i]].Agreed++;
        }
        return rows;
    }

    /// <summary>
    /// Trains a classifier on <paramref name="data"/> with cross-entropy weighted so that every class counts alike (the
    /// splits are unbalanced: People &amp; Body is most of the emoji). <paramref name="onEpoch"/> gets each epoch's mean loss.
    /// </summary>
    public static SampleClassifier Train(ImageDataset data, ClassifierOptions options, Action<int, double>? onEpoch = null)
    {
        if (options.Epochs < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Epochs, "Epochs: at least 1");
        if (options.Batch < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Batch, "Batch: at least 1");
        if (data.Height != data.Width) throw new ArgumentException($"the classifier takes square images, the data is {data.Width}×{data.Height}", nameof(data));
        manual_seed(options.Seed);
        var model = new SampleClassifier(data.Height, ClassNamesOf(data), options.Width);
        try
        {
            model.Fit(data, options, onEpoch);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The classes a classifier trained on <paramref name="data"/> tells apart: the manifest's names, or "class k" up to the largest label when the split has no manifest beside it.</summary>
    public static IReadOnlyList<string> ClassNamesOf(ImageDataset data) =>
        data.ClassNames.Count > 0 ? data.ClassNames : Enumerable.Range(0, data.Labels.Max() + 1).Select(k => $"class {k}").ToArray();

    /// <summary>The training loop of <see cref="Train"/>, on this classifier's current weights.</summary>
    public void Fit(ImageDataset data, ClassifierOptions options, Action<int, double>? onEpoch = null)
    {
        if (data.Height != ImageSize || data.Width != ImageSize) throw new ArgumentException($"the classifier takes {ImageSize}×{ImageSize} images, the data is {data.Width}×{data.Height}", nameof(data));
        if (data.Labels.Any(label => label >= ClassNames.Count)) throw new ArgumentException($"the data has label {data.Labels.Max()}, the classifier {ClassNames.Count} classes", nameof(data));
        train();
        int classes = ClassNames.Count;
        var counts = new int[classes];
        foreach (var label in data.Labels) counts[label]++;
        var weights = counts.Select(c => c == 0 ? 0f : (float)data.Count / (classes * c)).ToArray();
        using var classWeights = tensor(weights);
        using var optimizer = optim.AdamW(parameters(), options.LearningRate, weight_decay: 1e-4);
        int stepsPerEpoch = (data.Count + options.Batch - 1) / options.Batch, total = stepsPerEpoch * options.Epochs, step = 0;
        var order = Enumerable.Range(0, data.Count).ToArray();
        var random = new Random(options.Seed);
        var bytes = new byte[options.Batch * data.ImageByteCount];
        var labels = new long[options.Batch];
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            random.Shuffle(order);
            double lossSum = 0;
            for (int start = 0; start < data.Count; start += options.Batch, step++)
            {
                int n = Math.Min(options.Batch, data.Count - start);
                for (int i = 0; i < n; i++)
                {
                    data.GetImage(order[start + i]).CopyTo(bytes.AsSpan(i * data.ImageByteCount));
                    labels[i] = data.Labels[order[start + i]];
                }
                double lr = step < stepsPerEpoch
                    ? options.LearningRate * (step + 1) / stepsPerEpoch
                    : options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * (step - stepsPerEpoch) / Math.Max(1, total - stepsPerEpoch)));
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
                using var scope = NewDisposeScope();
                var images = Pixels.Normalize(tensor(bytes.AsSpan(0, n * data.ImageByteCount).ToArray(), dtype: ScalarType.Byte).reshape(n, 3, data.Height, data.Width));
                var loss = functional.cross_entropy(call(images), tensor(labels.AsSpan(0, n).ToArray()), classWeights);
                float value = loss.item<float>();
                if (!float.IsFinite(value)) throw new InvalidOperationException($"the classifier's training loss is {value} at step {step + 1}");
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                lossSum += value * n;
            }
            onEpoch?.Invoke(epoch + 1, lossSum / data.Count);
        }
        eval();
    }

    /// <summary>Writes the weights (float32) and, as metadata, the image size, width and class names.</summary>
    public void Save(string path)
    {
        using var scope = NewDisposeScope();
        var tensors = state_dict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach().cpu())).ToList();
        var metadata = new Dictionary<string, string>
        {
            [ModelCheckpoint.FormatKey] = FormatName,
            ["image_size"] = ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["width"] = Width.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [ModelCheckpoint.ClassNamesKey] = JsonSerializer.Serialize(ClassNames),
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafeTensors.Write(path, tensors, metadata);
    }

    /// <summary>Whether every value of <paramref name="t"/> is finite; the check's own tensors are freed here.</summary>
    static bool AllFinite(Tensor t)
    {
        using var finite = t.isfinite();
        using var all = finite.all();
        return all.item<bool>();
    }

    /// <summary>Reads a classifier that <see cref="Save"/> wrote; anything else is refused with the reason.</summary>
    public static SampleClassifier Load(string path)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        try
        {
            if (!metadata.TryGetValue(ModelCheckpoint.FormatKey, out var format) || format != FormatName)
                throw new InvalidDataException($"{path} is not a FractalMesh classifier (its format is '{format ?? "missing"}', expected '{FormatName}')");
            var names = JsonSerializer.Deserialize<string[]>(metadata[ModelCheckpoint.ClassNamesKey]) ?? [];
            var model = new SampleClassifier(int.Parse(metadata["image_size"], System.Globalization.CultureInfo.InvariantCulture), names,
                int.Parse(metadata["width"], System.Globalization.CultureInfo.InvariantCulture));
            try
            {
                var target = model.state_dict();
                var given = tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
                if (!target.Keys.ToHashSet().SetEquals(given.Keys) || target.Any(kv => !kv.Value.shape.SequenceEqual(given[kv.Key].shape)))
                    throw new InvalidDataException($"{path}: its tensors do not match a classifier of width {model.Width} and {names.Length} classes");
                if (given.FirstOrDefault(kv => !AllFinite(kv.Value)).Key is string damaged)
                    throw new InvalidDataException($"{path}: its tensor {damaged} holds values that are not finite (NaN or infinity)");
                using (no_grad())
                    foreach (var (name, t) in target) t.copy_(given[name]);
                model.eval();
                return model;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var kv in tensors) kv.Value.Dispose();
        }
    }
}

/// <summary>
/// A 3×3 convolution with padding 1 and a bias, computed as im2col (<c>unfold</c>) and one matrix product; its parameters
/// are named and shaped as <c>Conv2d</c>'s (<c>weight</c> (out, in, 3, 3), <c>bias</c> (out)) and initialised alike.
/// Why not <c>Conv2d</c>: on this repository's CPU machine (AVX-512), libtorch 2.10's float32 <c>conv2d</c> returns wrong
/// values, off by about 3 on outputs of about 7 and sometimes NaN, whenever the input channels are above 16 and not a multiple
/// of 16 (20, 24, 28, 40 …) with a batch of 8 or more; <c>unfold</c> and <c>matmul</c> agree with float64 there
/// (<c>SampleClassifierTests.ItsConvolutionsAgreeWithAFloat64Copy</c>).
/// </summary>
sealed class Conv3x3 : Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter bias;

    public Conv3x3(int inputs, int outputs) : base(nameof(Conv3x3))
    {
        weight = Parameter(empty(outputs, inputs, 3, 3));
        bias = Parameter(empty(outputs));
        // Conv2d's initialisation: Kaiming-uniform with a = √5, i.e. U(-1/√fan_in, 1/√fan_in), for both.
        double bound = 1.0 / Math.Sqrt(inputs * 9);
        using (no_grad())
        {
            weight.uniform_(-bound, bound);
            bias.uniform_(-bound, bound);
        }
        RegisterComponents();
    }

    /// <summary>(B, in, H, W) → (B, out, H, W).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], height = x.shape[2], width = x.shape[3];
        var columns = functional.unfold(x, 3, padding: 1);                                     // (B, in·9, H·W)
        var y = weight.view(weight.shape[0], -1).matmul(columns).add(bias.view(1, -1, 1));     // (B, out, H·W)
        return y.view(batch, weight.shape[0], height, width).MoveToOuterDisposeScope();
    }
}
