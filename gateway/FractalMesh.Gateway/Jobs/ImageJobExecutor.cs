using FractalMesh.Imaging;
using FractalMesh.Gateway.Generation;
using FractalMesh.Gateway.Validation;
using FractalMesh.Jobs;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;

namespace FractalMesh.Gateway.Jobs;

/// <summary>
/// Runs a job with the gateway's <see cref="IImageGenerator"/>: replays the stored request through the validator (so a
/// job means the same on every replica serving the same model), resumes from a checkpoint by handing level 0 the partial
/// images as known pixels at the step reached (docs/ARCHITECTURE.md, State in Redis), and reports every level-0 step with a preview.
/// </summary>
public sealed class ImageJobExecutor(RequestValidator validator, IImageGenerator generator) : IJobExecutor
{
    /// <summary>Statuses of a level service that pass: the job is resumed from its checkpoint rather than failed.</summary>
    public static readonly IReadOnlySet<StatusCode> Transient =
        new HashSet<StatusCode> { StatusCode.Unavailable, StatusCode.DeadlineExceeded, StatusCode.ResourceExhausted, StatusCode.Aborted };

    /// <summary>Most images a preview shows.</summary>
    public const int PreviewImages = 16;

    /// <summary>The stored form of a job's request: its spec as proto JSON, without the idempotency key.</summary>
    public static string Serialize(SubmitJobRequest request)
    {
        var spec = request.Clone();
        spec.IdempotencyKey = "";
        return JsonFormatter.Default.Format(spec);
    }

    public static SubmitJobRequest Parse(string json) => JsonParser.Default.Parse<SubmitJobRequest>(json);

    public async Task<IReadOnlyList<JobImage>> RunAsync(JobRecord job, JobCheckpoint? resumeFrom, Func<JobStepReport, ValueTask> onStep, CancellationToken cancel)
    {
        ImageJob request;
        try { request = validator.Job(Parse(job.RequestJson)); }
        catch (RpcException e) { throw new InvalidOperationException($"the stored request no longer fits the served model: {e.Status.Detail}", e); }
        catch (InvalidProtocolBufferException e) { throw new InvalidOperationException($"the stored request is unreadable: {e.Message}", e); }

        int size = generator.Model.ImageSize, plane = size * size, rows = request.Images.Count;
        var run = request;
        // A checkpoint of another shape (another model) cannot be resumed: start over, which gives the same bytes.
        if (resumeFrom is { Step: > 0 } && resumeFrom.Pixels.Length == rows * 3 * plane && resumeFrom.Done.Length == rows * plane)
        {
            run = request with
            {
                StartStep = resumeFrom.Step,
                Images = request.Images.Select((image, i) => image with
                {
                    KnownPixels = resumeFrom.Pixels.AsSpan(i * 3 * plane, 3 * plane).ToArray(),
                    KnownMask = resumeFrom.Done.AsSpan(i * plane, plane).ToArray(),
                    OriginalKnownMask = image.KnownMask ?? new bool[plane],
                }).ToArray(),
            };
        }

        IReadOnlyList<byte[]> images;
        try { images = await generator.GenerateAsync(run, cancel, step => onStep(Report(step, size))); }
        catch (RpcException e) when (Transient.Contains(e.StatusCode) && !cancel.IsCancellationRequested)
        {
            // A level below is down, restarting or overloaded (distributed mode): the runner resumes from the last checkpoint.
            throw new JobInterruptedException($"a lower level answered {e.StatusCode}: {e.Status.Detail}", e);
        }
        return images.Select((pixels, i) => new JobImage(PngImage.Encode(pixels, size, size), request.Images[i].Seed, request.Images[i].Label)).ToArray();
    }

    static JobStepReport Report(LevelStep step, int size)
    {
        int done = step.Done.Count(d => d);
        return new JobStepReport(new JobCheckpoint(step.Step + 1, step.Partial, step.Done), step.Steps,
            step.Done.Length == 0 ? 1 : (double)done / step.Done.Length, Preview(step.Partial, step.Done, size));
    }

    /// <summary>The first <see cref="PreviewImages"/> partial images in a grid; pixels not generated yet are mid-grey.</summary>
    public static byte[] Preview(byte[] partial, bool[] done, int size)
    {
        int plane = size * size, count = Math.Min(PreviewImages, done.Length / plane);
        var images = new byte[count][];
        for (int k = 0; k < count; k++)
        {
            var image = partial.AsSpan(k * 3 * plane, 3 * plane).ToArray();
            for (int i = 0; i < plane; i++)
                if (!done[k * plane + i]) image[i] = image[plane + i] = image[2 * plane + i] = 128;
            images[k] = image;
        }
        var (grid, width, height) = PngImage.Grid(images, size, (int)Math.Ceiling(Math.Sqrt(count)));
        return PngImage.Encode(grid, width, height);
    }
}
