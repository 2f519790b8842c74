using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using FractalMesh.Rpc;
using static TorchSharp.torch;

namespace FractalMesh.LevelService;

/// <summary>
/// The loaded model and the samplers of the levels this service serves, chained in process from the first served level
/// down to the pixel head or to the next level's remote replicas.
/// </summary>
public sealed class ServedLevels : IDisposable
{
    readonly FractalModel model;
    readonly Dictionary<int, IPatchSampler> samplers;
    readonly RemotePatchSampler? remoteNext;
    readonly SchedulerOptions scheduling;

    ServedLevels(FractalModel model, Device device, int first, int last, Dictionary<int, IPatchSampler> samplers, RemotePatchSampler? remoteNext,
        SchedulerOptions scheduling)
    {
        this.model = model;
        this.scheduling = scheduling;
        Device = device;
        First = first;
        Last = last;
        this.samplers = samplers;
        this.remoteNext = remoteNext;
        Shapes = samplers.Keys.ToDictionary(l => l, l => LevelShape.Of(model.Config, l));
    }

    /// <summary>The whole model (its class embeddings make level 0's conditions).</summary>
    public FractalModel Model => model;

    /// <summary>Where the model's tensors live.</summary>
    public Device Device { get; }
    /// <summary>First and last level served; <see cref="Last"/> equals the model's level count when the pixel head is served.</summary>
    public int First { get; }
    public int Last { get; }
    /// <summary>What each served level expects of its rows.</summary>
    public IReadOnlyDictionary<int, LevelShape> Shapes { get; }

    /// <summary>Rows per forward pass of every served level that batches across calls.</summary>
    public IReadOnlyList<(int Level, PassStatistics Statistics)> PassStatistics { get; private init; } = [];

    /// <summary>The sampler of a served level.</summary>
    public IPatchSampler SamplerOf(int level) => samplers[level];

    /// <summary>"levels 1..2 and the pixel head" and the like, for logs and errors.</summary>
    public string Description => (Last == model.Config.Levels, Last - First) switch
    {
        (true, 0) => "the pixel head",
        (true, 1) => $"level {First} and the pixel head",
        (true, _) => $"levels {First}..{Last - 1} and the pixel head",
        (false, 0) => $"level {First}",
        (false, _) => $"levels {First}..{Last}",
    };

    /// <summary>
    /// Loads the checkpoint and builds the chain of samplers for <paramref name="options"/>. Throws with the configuration
    /// key to fix when the range does not fit the model or lacks the next level's address. With <paramref name="telemetry"/>,
    /// every served level (the pixel head included) records its spans and step latencies.
    /// </summary>
    public static ServedLevels Load(LevelOptions options, LevelTelemetry? telemetry = null)
    {
        if (options.TorchThreads > 0) set_num_threads(options.TorchThreads);
        var device = new Device(options.Device);
        // Only the levels from the first served one down are read: a lower level's service never holds level 0's weights.
        var model = ModelCheckpoint.Open(options.Model, options.Preset, device, options.FirstLevel);
        try
        {
            model.eval();
            int levels = model.Config.Levels;
            // The last generator level brings its pixel head along, unless Level:NextAddresses says the head runs elsewhere.
            int first = options.FirstLevel, last = options.LastLevel ?? levels;
            if (last == levels - 1 && options.NextAddresses.Length == 0) last = levels;
            last = Math.Min(last, levels);
            if (first > levels)
                throw new InvalidOperationException($"Level:FirstLevel is {first} but the model has levels 0..{levels - 1} and its pixel head ({levels})");
            if (options.LastLevel > levels)
                throw new InvalidOperationException($"Level:LastLevel is {options.LastLevel} but the model has levels 0..{levels - 1} and its pixel head ({levels})");
            var nodes = new Dictionary<int, FractalModel>();
            for (var node = model; node is not null; node = node.Next) nodes[node.Level] = node;

            var samplers = new Dictionary<int, IPatchSampler>();
            RemotePatchSampler? remote = null;
            var scheduling = new SchedulerOptions { MaxRowsPerPass = options.MaxBatchRows, ChunkRows = options.ChunkRows };
            IPatchSampler Timed(IPatchSampler sampler, int level) => telemetry is null ? sampler : new TimedPatchSampler(sampler, level, telemetry);
            var statistics = new List<(int, PassStatistics)>();
            void Observe(PassStatistics s, int level)
            {
                statistics.Add((level, s));
                if (telemetry is not null) s.Passed += (rows, calls) => telemetry.PassRan(level, rows, calls);
            }
            IPatchSampler next;
            if (last == levels)
            {
                var head = FractalSampler.ForPixelHead(model, scheduling);
                Observe(head.Scheduler.Statistics, levels);
                next = Timed(head, levels);
                samplers[levels] = next;
            }
            else
            {
                if (options.NextAddresses.Length == 0)
                    throw new InvalidOperationException(
                        $"Level:NextAddresses is required: this service serves levels {first}..{last} and level {last + 1} runs elsewhere");
                remote = new RemotePatchSampler(new RemoteLevelOptions
                {
                    Addresses = options.NextAddresses,
                    Level = last + 1,
                    Timeout = TimeSpan.FromSeconds(options.NextTimeoutSeconds),
                    // One secret for the whole chain: this level presents to the next the secret it requires of its callers.
                    CallSecret = string.IsNullOrEmpty(options.CallSecret) ? null : options.CallSecret,
                    Tls = options.NextTls,
                    CaCertificatePath = string.IsNullOrWhiteSpace(options.NextCaCertificatePath) ? null : options.NextCaCertificatePath,
                }, patchSize: last + 1 == levels ? 1 : nodes[last + 1].Generator.PatchSize);
                next = remote;
            }
            for (int level = Math.Min(last, levels - 1); level >= first; level--)
            {
                var sampler = FractalSampler.ForLevel(nodes[level], next, scheduling);
                if (sampler is MarLevelSampler mar) Observe(mar.Scheduler.Statistics, level);
                next = Timed(sampler, level);
                samplers[level] = next;
            }
            return new ServedLevels(model, device, first, samplers.Keys.Max(), samplers, remote, scheduling) { PassStatistics = statistics };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Samples one throw-away row through the served levels, so that the first calls do not pay for lazy initialisation
    /// and the JIT's first tiers (a fresh service was measured at 0.68× its steady speed over its first requests). Where
    /// the next level is remote, the row goes through a copy of the served chain whose next level is a stand-in that
    /// answers blank patches (that level may still be loading, and a warm-up must not depend on another process); those
    /// throw-away samplers' passes do not count in the served levels' pass statistics. Telemetry is paused by the caller.
    /// </summary>
    public async Task WarmUpAsync()
    {
        var config = model.Config;
        IPatchSampler entry = SamplerOf(First);
        if (remoteNext is not null)
        {
            entry = new BlankPatches(remoteNext.PatchSize);
            var nodes = new Dictionary<int, FractalModel>();
            for (var node = model; node is not null; node = node.Next) nodes[node.Level] = node;
            // Scheduled as the served samplers are (rows per pass, chunking), so the warm-up runs the code paths they run.
            for (int level = Last; level >= First; level--) entry = FractalSampler.ForLevel(nodes[level], entry, scheduling);
        }
        if (First == 0)
        {
            var options = new SamplingOptions { NumIter = Enumerable.Repeat(1, config.Levels).ToArray(), Cfg = 2f };
            using var request = FractalSampler.NewRequest(model, [new ImageRequest(-1, 0)], options);
            await ComputeThread.Process.RunAsync(() => entry.SampleAsync(request));
            return;
        }
        var shape = Shapes[First];
        using var call = new PatchRequest
        {
            Conds = Enumerable.Range(0, shape.MaxConds).Select(_ => zeros(1, shape.CondWidth, device: Device)).ToArray(),
            NullConds = Enumerable.Range(0, shape.MaxConds).Select(_ => zeros(1, shape.CondWidth, device: Device)).ToArray(),
            Size = shape.PatchSize,
            KnownPixels = new byte[3 * shape.PatchSize * shape.PatchSize],
            KnownMask = new bool[shape.PatchSize * shape.PatchSize],
            Cfg = [2f],
            Temperature = [1f],
            FilterThreshold = [SamplingOptions.DefaultFilterThreshold],
            NumIter = Enumerable.Repeat(1, Math.Max(1, config.Levels - First)).ToArray(),
            Streams = [RowStream.ForImage(0)],
        };
        await ComputeThread.Process.RunAsync(() => entry.SampleAsync(call));
    }

    /// <summary>The next level's stand-in during a warm-up: every row's patch comes back blank, its known pixels kept.</summary>
    /// <param name="patchSize">What the remote sampler it stands in for reports.</param>
    sealed class BlankPatches(int patchSize) : IPatchSampler
    {
        public int PatchSize => patchSize;

        public Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
        {
            var pixels = new byte[request.Rows * 3 * request.Size * request.Size];
            request.KnownPixels.AsSpan(0, Math.Min(pixels.Length, request.KnownPixels.Length)).CopyTo(pixels);
            return Task.FromResult(pixels);
        }
    }

    public void Dispose()
    {
        remoteNext?.Dispose();
        model.Dispose();
    }
}
