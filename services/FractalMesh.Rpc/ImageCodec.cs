using FractalMesh.Model.Config;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using Google.Protobuf;
using static Google.Rpc.BadRequest.Types;

namespace FractalMesh.Rpc;

/// <summary>
/// Whole images over the level contract's <c>GenerateImages</c> stream: what a gateway without weights sends to a level-0
/// service (labels, seeds, known pixels, sampling options, a resumption point) and the step events it gets back.
/// </summary>
public static class ImageCodec
{
    const int MaxViolations = 16;

    /// <summary>The level-0 request for <paramref name="images"/>.</summary>
    public static GenerateImagesRequest ToMessage(IReadOnlyList<ImageRequest> images, SamplingOptions options, int startStep, bool streamSteps)
    {
        var message = new GenerateImagesRequest
        {
            Cfg = options.Cfg,
            Temperature = options.Temperature,
            FilterThreshold = options.FilterThreshold,
            LinearCfg = options.LinearCfg,
            LinearTemperature = options.LinearTemperature,
            StartStep = startStep,
            StreamSteps = streamSteps,
        };
        message.NumIter.AddRange(options.NumIter);
        foreach (var image in images)
        {
            var spec = new ImageSpec { Label = image.Label, Seed = image.Seed };
            if (image.KnownPixels is { } pixels && image.KnownMask is { } mask)
            {
                spec.KnownPixels = ByteString.CopyFrom(pixels);
                spec.KnownMask = ByteString.CopyFrom(Bytes(mask));
            }
            if (startStep > 0 && image.OriginalKnownMask is { } original) spec.OriginalKnownMask = ByteString.CopyFrom(Bytes(original));
            message.Images.Add(spec);
        }
        return message;
    }

    /// <summary>
    /// Validates <paramref name="message"/> against the model (throws InvalidArgument naming every offending field) and
    /// decodes it.
    /// </summary>
    public static (IReadOnlyList<ImageRequest> Images, SamplingOptions Options) FromMessage(GenerateImagesRequest message, FractalConfig config)
    {
        var violations = new List<FieldViolation>();
        void Add(string field, string description)
        {
            if (violations.Count < MaxViolations) violations.Add(new() { Field = field, Description = description });
        }
        int size = config.ImageSizes[0], pixels = size * size;
        if (message.Images.Count == 0) Add("images", "is empty: send at least one image");
        if (message.NumIter.Count != config.Levels) Add("num_iter", $"has {message.NumIter.Count} entries, the model has {config.Levels} levels");
        for (int l = 0; l < message.NumIter.Count && l < config.Levels; l++)
            if (message.NumIter[l] < 1 || message.NumIter[l] > config.SeqLen(l))
                Add($"num_iter[{l}]", $"is {message.NumIter[l]}, must be between 1 and {config.SeqLen(l)} (the patches of level {l})");
        if (!float.IsFinite(message.Cfg) || message.Cfg < 1) Add("cfg", $"is {message.Cfg}, must be a finite number of 1 or more");
        if (!float.IsFinite(message.Temperature) || message.Temperature <= 0) Add("temperature", $"is {message.Temperature}, must be a finite number above 0");
        if (!float.IsFinite(message.FilterThreshold) || message.FilterThreshold < 0 || message.FilterThreshold > 1)
            Add("filter_threshold", $"is {message.FilterThreshold}, must be between 0 and 1");
        if (message.StartStep < 0 || (message.NumIter.Count > 0 && message.StartStep >= Math.Max(message.NumIter[0], config.SeqLen(0))))
            Add("start_step", $"is {message.StartStep}, must be 0 or a level-0 step of the schedule");
        for (int i = 0; i < message.Images.Count && violations.Count < MaxViolations; i++)
        {
            var image = message.Images[i];
            string at = $"images[{i}]";
            if (image.Label < -1 || image.Label >= config.ClassNum) Add($"{at}.label", $"is {image.Label}, must be -1 (unconditional) or 0..{config.ClassNum - 1}");
            if (image.KnownPixels.Length != 0 && image.KnownPixels.Length != 3 * pixels)
                Add($"{at}.known_pixels", $"has {image.KnownPixels.Length} bytes, expected 0 or 3 × {size} × {size} = {3 * pixels}");
            if (image.KnownMask.Length != 0 && image.KnownMask.Length != pixels)
                Add($"{at}.known_mask", $"has {image.KnownMask.Length} bytes, expected 0 or {size} × {size} = {pixels}");
            else if (image.KnownMask.Length == pixels && image.KnownMask.Span.IndexOfAnyExcept((byte)0, (byte)1) is var bad and >= 0)
                Add($"{at}.known_mask", $"byte {bad} is {image.KnownMask.Span[bad]}, must be 0 or 1");
            if ((image.KnownMask.Length == 0) != (image.KnownPixels.Length == 0))
                Add($"{at}.known_pixels", "and known_mask go together: send both or neither");
            if (image.OriginalKnownMask.Length != 0 && (message.StartStep == 0 || image.OriginalKnownMask.Length != pixels))
                Add($"{at}.original_known_mask", $"has {image.OriginalKnownMask.Length} bytes, expected {pixels} with start_step > 0, else none");
        }
        if (violations.Count > 0) throw PatchRowCodec.InvalidArgument(violations);

        var images = message.Images.Select(spec => new ImageRequest(
            spec.Label,
            spec.Seed,
            spec.KnownPixels.Length == 0 ? null : spec.KnownPixels.ToByteArray(),
            spec.KnownMask.Length == 0 ? null : Flags(spec.KnownMask.Span),
            spec.OriginalKnownMask.Length == 0 ? (message.StartStep > 0 ? new bool[pixels] : null) : Flags(spec.OriginalKnownMask.Span))).ToList();
        var options = new SamplingOptions
        {
            Cfg = message.Cfg,
            Temperature = message.Temperature,
            FilterThreshold = message.FilterThreshold,
            LinearCfg = message.LinearCfg,
            LinearTemperature = message.LinearTemperature,
            NumIter = message.NumIter.ToArray(),
        };
        return (images, options);
    }

    /// <summary>The event for one finished level-0 step.</summary>
    public static GenerateImagesEvent StepEvent(LevelStep step) => new()
    {
        Step = step.Step,
        Steps = step.Steps,
        Partial = ByteString.CopyFrom(step.Partial),
        Done = ByteString.CopyFrom(Bytes(step.Done)),
    };

    /// <summary>The level-0 step an event reports.</summary>
    public static LevelStep FromStepEvent(GenerateImagesEvent e) => new(e.Step, e.Steps, e.Partial.ToByteArray(), Flags(e.Done.Span));

    static byte[] Bytes(bool[] flags)
    {
        var bytes = new byte[flags.Length];
        for (int i = 0; i < flags.Length; i++) bytes[i] = flags[i] ? (byte)1 : (byte)0;
        return bytes;
    }

    static bool[] Flags(ReadOnlySpan<byte> bytes)
    {
        var flags = new bool[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) flags[i] = bytes[i] != 0;
        return flags;
    }
}
