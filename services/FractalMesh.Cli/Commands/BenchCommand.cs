using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FractalMesh.Model;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using FractalMesh.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>fractalmesh bench</c>: training step, likelihood pass and sampling throughput of a preset (random weights unless
/// --model), printed as numbers; the same configuration as docs/ARCHITECTURE.md, Benchmarks so they compare with the official code's.
/// </summary>
public static class BenchCommand
{
    /// <summary><c>bench</c>.</summary>
    public static Command Create()
    {
        var preset = CliOptions.Text("--preset", "NAME", "the architecture, with random weights", "fractalmar_tiny_in32");
        var model = CliOptions.Text("--model", "FILE", "measure these weights instead of a random preset");
        var batches = CliOptions.IntList("--batches", "N,N,..", "sampling batch sizes", 1, 1 << 16, [1, 8, 32]);
        var iters = CliOptions.IntList("--iters", "A,B,..", "sampling iterations per level", 1, 4096, [16, 8]);
        var cfg = CliOptions.Number("--cfg", "guidance scale", 3, 1, 50);
        var repeats = CliOptions.Int("--repeats", "timed repeats after one warm-up", 3, 1, 1000);
        var threads = CliOptions.Int("--threads", "libtorch threads (0: libtorch's choice)", 0, 0, 1024);
        var chunk = CliOptions.Int("--chunk", "rows per scheduler pass (0: the scheduler's default)", 0, 0, 1 << 20);
        var headChunk = CliOptions.Int("--head-chunk", "rows per chunk of the pixel heads' eager backward in the training step (the baseline beside it: none)",
            (int)Trainer.DefaultHeadChunkRows, 1, 1 << 24);
        var noTraining = CliOptions.Flag("--no-training", "skip the training step and likelihood pass");
        var noSampling = CliOptions.Flag("--no-sampling", "skip sampling");
        var invariance = CliOptions.Flag("--check-invariance", "check that batching leaves every image's bytes unchanged");
        var command = new Command("bench", "training step, likelihood pass and sampling speed, per level, beside a matmul")
        {
            preset, model, batches, iters, cfg, repeats, threads, chunk, headChunk, noTraining, noSampling, invariance,
        };
        command.SetAction(r => Run(r.GetValue(preset)!, r.GetValue(model), r.GetValue(batches)!, r.GetValue(iters)!, (float)r.GetValue(cfg),
            r.GetValue(repeats), r.GetValue(noSampling), r.GetValue(noTraining), r.GetValue(threads), r.GetValue(chunk), r.GetValue(headChunk), r.GetValue(invariance)));
        return command;
    }

    static int Run(string preset, string? modelPath, int[] batches, int[] numIter, float cfg, int repeats, bool skipSampling, bool skipTraining,
        int threads, int chunk, int headChunk, bool invariance)
    {
        if (threads > 0) set_num_threads(threads);
        using var model = modelPath is null ? new FractalModel(Presets.Get(preset)) : ModelCheckpoint.Open(modelPath, preset);
        var config = model.Config;
        int size = config.ImageSizes[0];
        Console.WriteLine($"{(modelPath ?? preset)}: {model.parameters().Sum(p => p.numel()):N0} parameters, {get_num_threads()} threads, native allocator {TcmallocRelaunch.ActiveAllocator()}");

        // Training step and likelihood pass at batch 32.
        if (!skipTraining)
        {
            var optimizer = optim.AdamW(model.parameters(), 1e-4, 0.9, 0.95, 1e-8, 0.05);
            using var images = randint(0, 256, [32, 3, size, size], dtype: ScalarType.Byte);
            using var x = Pixels.Normalize(images);
            using var labels = randint(0, config.ClassNum, [32], dtype: ScalarType.Int64);
            model.train();
            // The trainer's setting (pixel heads' eager backward in cache-sized chunks), as the baseline in the same run the
            // whole batch at once, and the trainer's setting with bfloat16 products (train --bf16); interleaved so that
            // drifts of a shared machine hit all alike.
            (long Rows, ScalarType? Matmul)[] settings = [(headChunk, null), (0, null), (headChunk, ScalarType.BFloat16)];
            var stepTimes = settings.Select(_ => new List<double>()).ToArray();
            var parts = new double[4];        // the trainer's setting: forward (with the heads' eager pass), backward, clipping, AdamW
            for (int i = 0; i < repeats + 1; i++)
            {
                for (int s = 0; s < settings.Length; s++)
                {
                    model.UseEagerHeadBackward(settings[s].Rows);
                    model.UseMatmulType(settings[s].Matmul);
                    var sw = Stopwatch.StartNew();
                    using (var scope = NewDisposeScope())
                    {
                        optimizer.zero_grad();
                        var loss = model.Loss(x, labels);
                        double forward = sw.Elapsed.TotalSeconds;
                        loss.backward();
                        double backward = sw.Elapsed.TotalSeconds;
                        nn.utils.clip_grad_norm_(model.parameters(), 3.0);
                        double clip = sw.Elapsed.TotalSeconds;
                        optimizer.step();
                        if (i > 0 && s == 0)
                        {
                            parts[0] += forward;
                            parts[1] += backward - forward;
                            parts[2] += clip - backward;
                            parts[3] += sw.Elapsed.TotalSeconds - clip;
                        }
                    }
                    if (i > 0) stepTimes[s].Add(sw.Elapsed.TotalSeconds);
                }
            }
            model.UseEagerHeadBackward(0);
            model.UseMatmulType(null);
            double chunked = stepTimes[0].Average(), whole = stepTimes[1].Average(), mixed = stepTimes[2].Average();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"training step, batch 32:    {chunked:F3} s  ({32 / chunked:F1} images/s; pixel heads in chunks of {headChunk} rows{(headChunk == Trainer.DefaultHeadChunkRows ? ", as the trainer runs" : "")})"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  of which forward (with the heads' own backward) {parts[0] / repeats:F3} s, backward {parts[1] / repeats:F3} s, clipping {parts[2] / repeats:F3} s, AdamW {parts[3] / repeats:F3} s"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  baseline, heads unchunked: {whole:F3} s  ({32 / whole:F1} images/s; the chunks are {whole / chunked:F2}× faster)"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  products in bfloat16 (train --bf16): {mixed:F3} s  ({32 / mixed:F1} images/s; {chunked / mixed:F2}× the float32 step)"));
            var times = new List<double>();
            model.eval();
            times.Clear();
            for (int i = 0; i < repeats + 1; i++)
            {
                var sw = Stopwatch.StartNew();
                using (no_grad()) using (var loss = model.Loss(x, labels)) loss.item<float>();
                if (i > 0) times.Add(sw.Elapsed.TotalSeconds);
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"likelihood pass, batch 32:  {times.Average():F3} s  ({32 / times.Average():F1} images/s)"));
            optimizer.Dispose();
        }
        if (!skipTraining) LevelZeroEfficiency(model, repeats);
        if (skipSampling) return 0;

        var timers = new Dictionary<int, TimedSampler>();
        var sampler = new FractalSampler(model, (inner, level) => timers[level] = new TimedSampler(inner), new SchedulerOptions { ChunkRows = chunk });
        var options = new SamplingOptions { Cfg = cfg, NumIter = numIter };
        double peak = MatmulGflops(repeats);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sampling: iterations {string.Join(',', numIter)}, cfg {cfg.ToString(CultureInfo.InvariantCulture)} (linear); a 512×512 matmul runs at {peak:F1} GFLOP/s here"));
        // Lazy initialisation (TorchSharp, libtorch kernels) is not sampling: one throw-away image first.
        sampler.Generate([new ImageRequest(0, -1)], options with { NumIter = numIter.Select(_ => 1).ToArray() });
        foreach (var b in batches)
        {
            foreach (var t in timers.Values) t.Reset();
            foreach (var (_, statistics) in sampler.PassStatistics) statistics.Reset();
            var requests = Enumerable.Range(0, b).Select(i => new ImageRequest(i % config.ClassNum, i)).ToList();
            var sw = Stopwatch.StartNew();
            sampler.Generate(requests, options);
            double total = sw.Elapsed.TotalSeconds;
            var inclusive = Enumerable.Range(1, config.Levels).Select(l => timers[l].Seconds).Append(0).ToArray();
            var parts = new List<string> { $"level 0 {total - inclusive[0]:F2}s" };
            for (int l = 1; l <= config.Levels; l++)
                parts.Add($"{(l == config.Levels ? "pixel head" : $"level {l}")} {inclusive[l - 1] - inclusive[l]:F2}s");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  batch {b,3}: {b / total:F3} images/s  ({total:F1} s; {string.Join(", ", parts)})"));
            foreach (var (level, statistics) in sampler.PassStatistics)
            {
                double flops = PassFlops(model, level, statistics.Rows), seconds = statistics.Elapsed.TotalSeconds;
                double gf = seconds > 0 ? flops / seconds / 1e9 : 0;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"             {(level == config.Levels ? "pixel head" : $"level {level}"),-10} {statistics.Passes,6} passes, {(double)statistics.Rows / Math.Max(1, statistics.Passes),8:F1} rows each, {seconds,7:F2} s in passes, {flops / 1e9,8:F1} GFLOP, {gf,6:F1} GFLOP/s = {100 * gf / peak:F0}% of the matmul"));
            }
        }
        if (invariance) CheckInvariance(sampler, options, config.ClassNum, size);
        return 0;
    }

    /// <summary>
    /// The level-0 transformer's forward pass at batch 32 in GFLOP/s (multiply-adds counted as 2 FLOPs: qkv, projection and
    /// MLP 24·C² per token and block, attention 4·T·C), beside a 512×512 float32 matrix product measured in the same run.
    /// </summary>
    static void LevelZeroEfficiency(FractalModel model, int repeats)
    {
        var config = model.Config;
        if (model.Generator is not MarGenerator mar) return;
        long b = 32, T = mar.SeqLen + mar.NumConds, C = config.Widths[0], blocks = config.Blocks[0];
        double flops = b * T * blocks * (24.0 * C * C + 4.0 * T * C);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var patches = randn(b, mar.SeqLen, 3 * mar.PatchSize * mar.PatchSize);
        var mask = zeros(b, mar.SeqLen);
        var conds = Enumerable.Repeat(randn(b, C), mar.NumConds).ToList();
        model.eval();
        double Time(Action run)
        {
            run();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < repeats * 3; i++) run();
            return sw.Elapsed.TotalSeconds / (repeats * 3);
        }
        double forward = Time(() => { using var s = NewDisposeScope(); mar.Predict(patches, mask, conds); });
        var a = randn(512, 512);
        var m = randn(512, 512);
        double matmul = Time(() => { using var s = NewDisposeScope(); a.matmul(m); });
        double gf = flops / forward / 1e9, peak = 2.0 * 512 * 512 * 512 / matmul / 1e9;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"level-0 forward, batch 32:  {forward * 1000:F1} ms, {gf:F1} GFLOP/s = {100 * gf / peak:F0}% of a 512×512 matmul here ({peak:F1} GFLOP/s)"));
        // The same level's MLP product (rows × C)·(C × 4C) in float32 and in bfloat16 (what train --bf16 multiplies in).
        var x32 = randn(b * T, C);
        var w32 = randn(C, 4 * C);
        var (x16, w16) = (x32.to_type(ScalarType.BFloat16), w32.to_type(ScalarType.BFloat16));
        double mlpFlops = 2.0 * b * T * C * 4 * C;
        double f32 = mlpFlops / Time(() => { using var s = NewDisposeScope(); x32.matmul(w32); }) / 1e9;
        double bf16 = mlpFlops / Time(() => { using var s = NewDisposeScope(); x16.matmul(w16); }) / 1e9;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"level-0 MLP product ({b * T}×{C})·({C}×{4 * C}): {f32:F1} GFLOP/s in float32, {bf16:F1} in bfloat16 ({bf16 / f32:F2}×)"));
    }

    /// <summary>
    /// GFLOP/s of a 512×512 float32 matrix product on this machine now (the reference for every level's rate): the best of
    /// five rounds, so that a round slowed by another process does not lower the bar.
    /// </summary>
    static double MatmulGflops(int repeats)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var a = randn(512, 512);
        var m = randn(512, 512);
        using (NewDisposeScope()) a.matmul(m);
        int runs = Math.Max(10, repeats * 5);
        double best = double.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < runs; i++) { using var s = NewDisposeScope(); a.matmul(m); }
            best = Math.Min(best, sw.Elapsed.TotalSeconds / runs);
        }
        return 2.0 * 512 * 512 * 512 / best / 1e9;
    }

    /// <summary>
    /// Multiply-adds (2 FLOPs each) of the transformer blocks over <paramref name="rows"/> rows of a level's passes: per token
    /// and block 24·C² (qkv, projection, MLP ×4) plus 4·T·C (attention). A MAR level sees its patches and its condition
    /// tokens; each of the pixel head's three channel steps runs one new position through the blocks (its cache holds the
    /// ones before), attending to 1, 2 and 3 positions, plus its logits and condition projections. The MAR levels' embeddings
    /// and output projections are left out, so their rates are lower bounds.
    /// </summary>
    static double PassFlops(FractalModel model, int level, long rows)
    {
        var config = model.Config;
        double tokens, width = config.Widths[Math.Min(level, config.Widths.Length - 1)], blocks = config.Blocks[Math.Min(level, config.Blocks.Length - 1)];
        if (level == config.Levels)
        {
            // The head's projections are a large share at its width, so they count: the codebook logits (256 values) every
            // step and the condition's projection once a pixel (every third step).
            double condWidth = config.Widths[level - 1];
            return rows * (blocks * (24.0 * width * width + 4.0 * 2 * width) + 2.0 * 256 * width + 2.0 * condWidth * width / 3);
        }
        else
        {
            var node = model;
            while (node.Level < level) node = node.Next!;
            if (node.Generator is not MarGenerator mar) return 0;
            tokens = mar.SeqLen + mar.NumConds + (mar.GuidingPixelHead is null ? 0 : 1);
        }
        return rows * blocks * tokens * (24.0 * width * width + 4.0 * tokens * width);
    }

    /// <summary>Generates 16 images in one batch, then images 0, 5 and 11 alone and in a batch of 4, and counts differing bytes.</summary>
    static void CheckInvariance(FractalSampler sampler, SamplingOptions options, int classes, int size)
    {
        var batch = Enumerable.Range(0, 16).Select(i => new ImageRequest(i % classes, 500 + i)).ToList();
        var all = sampler.Generate(batch, options);
        int n = 3 * size * size, identical = 0, checkedImages = 0;
        foreach (var i in new[] { 0, 5, 11 })
        {
            var alone = sampler.Generate([batch[i]], options);
            var four = sampler.Generate([new ImageRequest(1 % classes, 7), batch[i], new ImageRequest(0, 9), new ImageRequest(2 % classes, 3)], options);
            bool same = alone.AsSpan().SequenceEqual(all.AsSpan(i * n, n)) && alone.AsSpan().SequenceEqual(four.AsSpan(n, n));
            checkedImages++;
            if (same) identical++;
        }
        Console.WriteLine($"batch invariance: {identical}/{checkedImages} images byte-identical alone, in a batch of 4 and in a batch of 16");
    }

    /// <summary>Inclusive wall time spent in one level's sampler (and everything below it).</summary>
    sealed class TimedSampler(IPatchSampler inner) : IPatchSampler
    {
        readonly Stopwatch watch = new();
        public int PatchSize => inner.PatchSize;
        public double Seconds => watch.Elapsed.TotalSeconds;
        public void Reset() => watch.Reset();

        public async Task<byte[]> SampleAsync(PatchRequest request, CancellationToken cancel = default)
        {
            watch.Start();
            try { return await inner.SampleAsync(request, cancel).ConfigureAwait(false); }
            finally { watch.Stop(); }
        }
    }
}
