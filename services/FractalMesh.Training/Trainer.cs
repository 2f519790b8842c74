using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FractalMesh.Data;
using FractalMesh.Model;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FractalMesh.Training;

/// <summary>Progress of one optimizer step, for the progress bar and the log.</summary>
public readonly record struct StepReport(int Step, int TotalSteps, double Loss, double LearningRate, double ImagesPerSecond);

/// <summary>
/// Trains a fractal model the way the official code does (AdamW β=(0.9, 0.95), weight decay 0.05 on weights only,
/// linear warm-up then cosine learning rate, gradient clipping at 3.0, label drop 0.1, random horizontal flips, red weight 5),
/// checkpointing model, optimizer and random state so that a killed run resumes into the same weights (on the CPU; on CUDA
/// only libtorch's CPU generator is saved, so masks and dropout drawn on the GPU differ after a resume).
/// </summary>
public sealed class Trainer : IDisposable
{
    public const string CheckpointFile = "checkpoint.safetensors";
    const string OptimizerFile = "optimizer.bin";
    const string StateFile = "state.json";
    const string RngFile = "rng.bin";

    readonly TrainerOptions options;
    readonly ImageDataset data;
    readonly FractalModel model;
    readonly AdamW optimizer;
    readonly List<ParamGroup> groups;
    readonly string? stateDir;
    readonly Device device;

    /// <summary>Steps completed so far (restored on resume).</summary>
    public int Step { get; private set; }
    public FractalModel Model => model;

    /// <summary>Steps between two trims of the native heap (<see cref="NativeAllocator.Trim"/>).</summary>
    const int TrimEverySteps = 50;

    /// <summary>Rows per chunk of the pixel heads' training pass on a CPU (<see cref="TrainerOptions.HeadChunkRows"/>).</summary>
    public const long DefaultHeadChunkRows = 4096;

    public Trainer(TrainerOptions options)
    {
        this.options = options;
        if (options.Threads > 0) set_num_threads(options.Threads);
        data = ImageDataset.Load(options.TrainSplit);
        stateDir = FindState(options.OutputDir);
        bool resume = stateDir is not null;
        if (resume)
        {
            model = ModelCheckpoint.Load(Path.Combine(stateDir!, CheckpointFile));
        }
        else
        {
            manual_seed(options.Seed);
            var config = options.InitFrom is { } init ? ModelCheckpoint.ReadConfig(init) : options.Config ?? Presets.Get(options.Preset);
            if (options.Dropout is double d) config = config with { AttnDropout = d, ProjDropout = d };
            if (options.RedWeight is double rw) config = config with { RWeight = rw };
            model = new FractalModel(config);
            if (options.InitFrom is { } from) ModelCheckpoint.LoadWeights(model, from);
        }
        if (model.Config.ImageSizes[0] != data.Height || data.Height != data.Width)
            throw new InvalidDataException($"{options.TrainSplit} holds {data.Width}×{data.Height} images but the model makes {model.Config.ImageSizes[0]}×{model.Config.ImageSizes[0]}");
        if (data.Labels.Length > 0 && data.Labels.Max() >= model.Config.ClassNum)
            throw new InvalidDataException($"{options.TrainSplit} has label {data.Labels.Max()} but the model knows {model.Config.ClassNum} classes");

        device = new Device(options.Device);
        if (device.type != DeviceType.CPU) model.to(device);
        model.UseEagerHeadBackward(options.HeadChunkRows ?? (device.type == DeviceType.CPU ? DefaultHeadChunkRows : 0));
        if (options.BFloat16Matmuls) model.UseMatmulType(ScalarType.BFloat16);

        // Weight decay on weights only, as the official add_weight_decay: no decay for biases and 1-D (norm) parameters.
        var named = model.named_parameters().ToList();
        var decay = named.Where(p => p.parameter.dim() > 1 && !p.name.EndsWith(".bias", StringComparison.Ordinal)).Select(p => p.parameter).ToList();
        var noDecay = named.Where(p => !(p.parameter.dim() > 1 && !p.name.EndsWith(".bias", StringComparison.Ordinal))).Select(p => p.parameter).ToList();
        groups =
        [
            new AdamW.ParamGroup(decay, options.LearningRate, 0.9, 0.95, 1e-8, options.WeightDecay, false, false),
            new AdamW.ParamGroup(noDecay, options.LearningRate, 0.9, 0.95, 1e-8, 0.0, false, false),
        ];
        optimizer = optim.AdamW(groups.Cast<AdamW.ParamGroup>(), options.LearningRate, 0.9, 0.95, 1e-8, options.WeightDecay);
        if (resume) RestoreState();
    }

    /// <summary>Learning rate at <paramref name="step"/>: linear warm-up, then half-cosine to the minimum.</summary>
    public double LearningRateAt(int step)
    {
        if (step < options.WarmupSteps) return options.LearningRate * (step + 1) / options.WarmupSteps;
        double progress = (double)(step - options.WarmupSteps) / Math.Max(1, options.TotalSteps - options.WarmupSteps);
        progress = Math.Min(1, progress);
        return options.MinLearningRate + (options.LearningRate - options.MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    /// <summary>
    /// Runs until <see cref="TrainerOptions.TotalSteps"/>, <see cref="TrainerOptions.MaxStepsThisRun"/> or cancellation,
    /// checkpointing every few minutes and at the end. <paramref name="onCheckpoint"/> runs after each checkpoint (sample sheets).
    /// </summary>
    public void Run(CancellationToken cancel, Action<StepReport>? onStep = null, Action<int>? onCheckpoint = null)
    {
        Directory.CreateDirectory(options.OutputDir);
        string logPath = Path.Combine(options.OutputDir, "log.csv");
        if (!File.Exists(logPath)) File.WriteAllText(logPath, "step,loss,lr,images_per_s,wall_s\n");
        else
        {
            // Steps logged after the checkpoint we resumed from are done again: drop their old lines.
            var kept = File.ReadAllLines(logPath).Where((line, i) => i == 0 || int.Parse(line.Split(',')[0], CultureInfo.InvariantCulture) <= Step);
            File.WriteAllLines(logPath, kept);
        }
        var sinceCheckpoint = Stopwatch.StartNew();
        var wall = Stopwatch.StartNew();
        int stopAt = options.MaxStepsThisRun is int max ? (int)Math.Min(options.TotalSteps, (long)Step + max) : options.TotalSteps;
        model.train();
        while (Step < stopAt && !cancel.IsCancellationRequested)
        {
            var timer = Stopwatch.StartNew();
            double lr = LearningRateAt(Step);
            double loss = TrainStep(Step, lr);
            // The heap is handed back only now and then: right after a trim the next step faults every page of its
            // activations in again (a trim after every step measured 2.3-2.6× slower training), while the creep a trim
            // undoes (fragmentation from activations of varying size) is slow.
            if ((Step + 1) % TrimEverySteps == 0) NativeAllocator.Trim();
            double ips = options.BatchSize / timer.Elapsed.TotalSeconds;
            Step++;
            File.AppendAllText(logPath, string.Create(CultureInfo.InvariantCulture, $"{Step},{loss:F5},{lr:E3},{ips:F2},{wall.Elapsed.TotalSeconds:F1}\n"));
            onStep?.Invoke(new StepReport(Step, options.TotalSteps, loss, lr, ips));
            if (sinceCheckpoint.Elapsed.TotalMinutes >= options.CheckpointMinutes)
            {
                SaveState();
                onCheckpoint?.Invoke(Step);
                sinceCheckpoint.Restart();
            }
        }
        SaveState();
        onCheckpoint?.Invoke(Step);
    }

    /// <summary>One optimizer step on the batch that <paramref name="step"/> selects; returns the loss.</summary>
    double TrainStep(int step, double lr)
    {
        using var scope = NewDisposeScope();
        var (images, labels) = Batch(step);
        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
        optimizer.zero_grad();
        var loss = model.Loss(images, labels);
        loss.backward();
        nn.utils.clip_grad_norm_(model.parameters(), options.GradClip);
        optimizer.step();
        double value = loss.item<float>();
        if (!double.IsFinite(value)) throw new InvalidOperationException($"loss is {value} at step {step}; stopping");
        return value;
    }

    /// <summary>
    /// The batch of <paramref name="step"/>: an order of the training set per epoch (<see cref="EpochOrder"/>) and (with flips on) a
    /// flip per image, both derived from (seed, step) alone, so a resumed run sees exactly the images an uninterrupted one would.
    /// </summary>
    internal (Tensor Images, Tensor Labels) Batch(int step)
    {
        int n = data.Count, b = options.BatchSize;
        long first = (long)step * b;
        var bytes = new byte[b * data.ImageByteCount];
        var labels = new long[b];
        int side = data.Width;
        int epochCached = -1;
        int[] order = [];
        for (int i = 0; i < b; i++)
        {
            long k = first + i;
            int epoch = (int)(k / n);
            if (epoch != epochCached)
            {
                order = EpochOrder(epoch);
                epochCached = epoch;
            }
            int index = order[(int)(k % n)];
            bool flip = options.Flips && (StableSeed(options.Seed, k, 0xf11b) & 1) == 1;
            var src = data.GetImage(index);
            var dst = bytes.AsSpan(i * data.ImageByteCount, data.ImageByteCount);
            if (!flip) src.CopyTo(dst);
            else
            {
                for (int row = 0; row < src.Length / side; row++)
                    for (int col = 0; col < side; col++)
                        dst[row * side + col] = src[row * side + side - 1 - col];
            }
            labels[i] = data.Labels[index];
        }
        var u8 = tensor(bytes, dtype: ScalarType.Byte, device: device).reshape(b, 3, data.Height, data.Width);
        return (Pixels.Normalize(u8), tensor(labels, device: device));
    }

    /// <summary>
    /// The images of <paramref name="epoch"/> in the order they are trained on: a shuffle of the training set, or with
    /// <see cref="TrainerOptions.ClassBalance"/> above 0, a shuffle of <see cref="BalancedDraw"/>'s as many draws.
    /// </summary>
    int[] EpochOrder(int epoch)
    {
        var rng = new Random(StableSeed(options.Seed, epoch, 0x5eed));
        int[] order = options.ClassBalance > 0
            ? BalancedDraw(data.Labels, options.ClassBalance, rng)
            : Enumerable.Range(0, data.Count).ToArray();
        rng.Shuffle(order);
        return order;
    }

    /// <summary>
    /// As many image indices as <paramref name="labels"/> has, with every class's share of them proportional to
    /// count^(1 − <paramref name="balance"/>): 0 keeps the data's shares, 1 gives every class the same, 0.5 their square
    /// roots. A class's quota is filled by passes over a shuffle of its images, so within a class every image is drawn
    /// the same number of times, give or take one. Quotas are rounded by largest remainder, so they add up exactly.
    /// </summary>
    internal static int[] BalancedDraw(IReadOnlyList<int> labels, double balance, Random rng)
    {
        if (balance is < 0 or > 1 || double.IsNaN(balance)) throw new ArgumentOutOfRangeException(nameof(balance), balance, "the class balance lies in [0, 1]");
        var byClass = new SortedDictionary<int, List<int>>();
        for (int i = 0; i < labels.Count; i++)
        {
            if (!byClass.TryGetValue(labels[i], out var members)) byClass[labels[i]] = members = [];
            members.Add(i);
        }
        var classes = byClass.Values.ToArray();
        double[] weights = classes.Select(c => Math.Pow(c.Count, 1 - balance)).ToArray();
        double total = weights.Sum();
        double[] exact = weights.Select(w => labels.Count * w / total).ToArray();
        int[] quotas = exact.Select(q => (int)Math.Floor(q)).ToArray();
        int missing = labels.Count - quotas.Sum();
        foreach (int c in Enumerable.Range(0, classes.Length).OrderByDescending(c => exact[c] - quotas[c]).ThenBy(c => c).Take(missing)) quotas[c]++;
        var draws = new List<int>(labels.Count);
        for (int c = 0; c < classes.Length; c++)
        {
            for (int left = quotas[c]; left > 0; left -= classes[c].Count)
            {
                int[] pass = classes[c].ToArray();
                rng.Shuffle(pass);
                draws.AddRange(pass.Take(left));
            }
        }
        return draws.ToArray();
    }

    /// <summary>SplitMix64 of the inputs: unlike HashCode.Combine, the same in every process.</summary>
    static int StableSeed(long seed, long a, long b)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)a * 0xBF58476D1CE4E5B9UL ^ (ulong)b * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    /// <summary>Where a run folder's latest complete checkpoint lives (null for a fresh run).</summary>
    public static string? FindState(string outputDir)
    {
        foreach (var dir in new[] { Path.Combine(outputDir, "state"), Path.Combine(outputDir, ".state-old"), outputDir })
        {
            if (File.Exists(Path.Combine(dir, StateFile))) return dir;
        }
        return null;
    }

    /// <summary>The model checkpoint of a run folder's latest state.</summary>
    public static string CheckpointPath(string outputDir) =>
        Path.Combine(FindState(outputDir) ?? throw new FileNotFoundException($"{outputDir} holds no training state"), CheckpointFile);

    void SaveState()
    {
        // Everything goes into a fresh folder that replaces the previous one by two renames, so a kill at any moment
        // leaves one complete state (FindState also looks at the folder being replaced).
        string dir = options.OutputDir, tmp = Path.Combine(dir, ".saving"), current = Path.Combine(dir, "state"), old = Path.Combine(dir, ".state-old");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        ModelCheckpoint.Save(model, Path.Combine(tmp, CheckpointFile), extraMetadata: new Dictionary<string, string> { ["step"] = Step.ToString(CultureInfo.InvariantCulture) });
        optimizer.save_state_dict(Path.Combine(tmp, OptimizerFile));
        using (var rng = get_rng_state()) File.WriteAllBytes(Path.Combine(tmp, RngFile), rng.data<byte>().ToArray());
        File.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(new SavedState(Step, options.Seed, options.BatchSize, options.TotalSteps)));
        if (Directory.Exists(old)) Directory.Delete(old, true);
        if (Directory.Exists(current)) Directory.Move(current, old);
        Directory.Move(tmp, current);
        if (Directory.Exists(old)) Directory.Delete(old, true);
    }

    void RestoreState()
    {
        string dir = stateDir!;
        var state = JsonSerializer.Deserialize<SavedState>(File.ReadAllText(Path.Combine(dir, StateFile)))
            ?? throw new InvalidDataException($"{dir}/{StateFile} is empty");
        if (state.Seed != options.Seed || state.BatchSize != options.BatchSize)
            throw new InvalidOperationException($"{options.OutputDir} was started with seed {state.Seed} and batch {state.BatchSize}; resume with the same values");
        Step = state.Step;
        optimizer.load_state_dict(Path.Combine(dir, OptimizerFile));
        var rng = File.ReadAllBytes(Path.Combine(dir, RngFile));
        using var t = tensor(rng, dtype: ScalarType.Byte);
        set_rng_state(t);
    }

    sealed record SavedState(int Step, long Seed, int BatchSize, int TotalSteps);

    public void Dispose()
    {
        optimizer.Dispose();
        model.Dispose();
    }
}
