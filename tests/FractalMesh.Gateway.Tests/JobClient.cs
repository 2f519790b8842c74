using System.Net;
using FractalMesh.Client;
using FractalMesh.Imaging;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Grpc.Core;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>Watching jobs, waiting on readiness, and the in-process reference a job's images must equal byte for byte.</summary>
public static class JobClient
{
    public static bool IsFinished(JobState state) => FractalMeshClient.IsFinished(state);

    /// <summary>
    /// Watches a job over gRPC until its last event (done, failed or cancelled), calling <paramref name="onEvent"/> on each
    /// as it arrives; fails after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<List<JobEvent>> WatchAsync(this GatewayProcess gateway, string id, TimeSpan timeout, Action<JobEvent>? onEvent = null)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var events = new List<JobEvent>();
        try
        {
            await foreach (var e in gateway.Client.WatchJobAsync(id, cancel: cancel.Token))
            {
                events.Add(e);
                onEvent?.Invoke(e);
                if (IsFinished(e.State)) return events;
            }
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancel.IsCancellationRequested) { }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested) { }
        Assert.Fail($"job {id} did not finish in {timeout}; {events.Count} events, last {(events.Count > 0 ? events[^1] : null)}\n{gateway.Log}");
        return events;
    }

    /// <summary>Polls readiness until its body says <paramref name="status"/> ("Healthy", "Degraded"); returns the time it took.</summary>
    public static async Task<TimeSpan> WaitForReadinessAsync(this GatewayProcess gateway, string status, TimeSpan timeout)
    {
        var timer = System.Diagnostics.Stopwatch.StartNew();
        string last = "";
        while (timer.Elapsed < timeout)
        {
            var (code, body) = await gateway.ReadinessAsync();
            Assert.Equal(HttpStatusCode.OK, code); // Degraded still serves
            if (body.StartsWith($"{{\"status\":\"{status}\"", StringComparison.Ordinal)) return timer.Elapsed;
            last = body;
            await Task.Delay(50);
        }
        Assert.Fail($"readiness did not say {status} within {timeout}; last: {last}");
        return timer.Elapsed;
    }

    /// <summary>
    /// The PNGs an uninterrupted in-process run gives for <paramref name="request"/> (the gateway's defaults: temperature 1,
    /// filter 1e-4, linear guidance unless constant), image i with seed + i.
    /// </summary>
    public static byte[][] ReferencePngs(GenerateRequest request)
    {
        int count = Math.Max(1, request.Count);
        var images = request.ClassLabels.SelectMany(label => Enumerable.Range(0, count).Select(_ => label))
            .Select((label, i) => new ImageRequest(label, request.Seed + i)).ToArray();
        return Reference(images, request.Params);
    }

    /// <summary>The same for an inpaint request: white in the mask (red ≥ 128) is generated, the rest kept.</summary>
    public static byte[][] ReferencePngs(InpaintRequest request)
    {
        var (image, _, _) = PngImage.Decode(request.ImagePng.ToByteArray(), "image");
        var (mask, w, h) = PngImage.Decode(request.MaskPng.ToByteArray(), "mask");
        var known = Enumerable.Range(0, w * h).Select(i => mask[i] < 128).ToArray();
        var images = Enumerable.Range(0, Math.Max(1, request.Count)).Select(i => new ImageRequest(request.ClassLabel, request.Seed + i, image, known)).ToArray();
        return Reference(images, request.Params);
    }

    public static byte[][] Reference(ImageRequest[] images, SamplingParams p)
    {
        // One libtorch thread: with two OpenMP threads on a 2-core machine shared with gateway processes (and maybe a
        // training run), the threads spin at barriers waiting for each other and a run takes 20-50 times longer.
        TorchSharp.torch.set_num_threads(1);
        using var model = ModelCheckpoint.Open(GatewayProcess.ModelFolder);
        var options = new SamplingOptions
        {
            Cfg = p.Cfg == 0 ? 1 : p.Cfg,
            Temperature = p.Temperature == 0 ? 1 : p.Temperature,
            FilterThreshold = p.FilterThreshold == 0 ? 1e-4f : p.FilterThreshold,
            LinearCfg = p.CfgSchedule != "constant",
            LinearTemperature = p.TemperatureSchedule == "linear",
            NumIter = p.NumIter.ToArray(),
        };
        var bytes = new FractalSampler(model).Generate(images, options);
        int size = model.Config.ImageSizes[0], imageBytes = 3 * size * size;
        return Enumerable.Range(0, images.Length).Select(i => PngImage.Encode(bytes.AsSpan(i * imageBytes, imageBytes), size, size)).ToArray();
    }

    /// <summary>
    /// An inpaint job of <paramref name="count"/> images keeping two whole level-0 patches (4×4 pixels at (0,0) and (8,8))
    /// and a scattered fifth of the other pixels: 14 patches are generated (14 steps) with known sub-pixels handed down,
    /// and a resumption must keep the two known patches out of the MAR order, as the uninterrupted run did.
    /// </summary>
    public static InpaintRequest LongInpaint(long seed, int count)
    {
        var mask = new byte[3 * 256];
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
            {
                bool known = (x < 4 && y < 4) || (x is >= 8 and < 12 && y is >= 8 and < 12) || (7 * x + 3 * y) % 5 == 0;
                if (!known) mask[y * 16 + x] = mask[256 + y * 16 + x] = mask[512 + y * 16 + x] = 255; // white: generate
            }
        return new InpaintRequest
        {
            ImagePng = GatewayClient.Png(GatewayClient.RandomImage(11, 16, 16), 16, 16),
            MaskPng = GatewayClient.Png(mask, 16, 16),
            ClassLabel = 6,
            Count = count,
            Seed = seed,
            Params = new SamplingParams { Cfg = 3, NumIter = { 16, 16 } },
        };
    }

    /// <summary>A job of <paramref name="classes"/> × <paramref name="count"/> images with guidance and 16 steps at both levels: long enough to be interrupted.</summary>
    public static GenerateRequest Long(long seed, int classes, int count) => new()
    {
        ClassLabels = { Enumerable.Range(0, classes).Select(c => c % 10) },
        Count = count,
        Seed = seed,
        Params = new SamplingParams { Cfg = 3, NumIter = { 16, 16 } },
    };
}
