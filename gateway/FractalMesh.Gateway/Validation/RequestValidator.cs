using System.Globalization;
using FractalMesh.Imaging;
using FractalMesh.Gateway.Generation;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Validation;

/// <summary>
/// Checks every field of a public request against the served model and the gateway's limits and maps it to an
/// <see cref="ImageJob"/>; anything wrong becomes one INVALID_ARGUMENT naming each bad field (see <see cref="FieldViolations"/>).
/// Proto3 cannot tell an unset number from 0, so 0 means "default" where 0 is not a valid value: count 1, cfg 1,
/// temperature 1, filter_threshold 1e-4.
/// </summary>
public sealed class RequestValidator(IImageGenerator generator, IOptions<GatewayOptions> options)
{
    public const float MaxCfg = SamplingOptions.MaxCfg, MaxTemperature = SamplingOptions.MaxTemperature, DefaultFilterThreshold = SamplingOptions.DefaultFilterThreshold;

    ModelDescription Model => generator.Model;
    GatewayOptions Limits => options.Value;

    /// <param name="request">The request.</param>
    /// <param name="prefix">Its path inside an enclosing message, for field names (<c>generate.</c> in a job), or empty.</param>
    public ImageJob Generate(GenerateRequest request, string prefix = "")
    {
        var violations = new FieldViolations(prefix);
        if (request.ClassLabels.Count == 0) violations.Add("class_labels", $"give at least one class in {ClassRange} (-1: unconditional)");
        if (request.ClassLabels.Count > Limits.MaxImagesPerRequest)
            violations.Add("class_labels", $"{request.ClassLabels.Count} classes exceed the limit of {Limits.MaxImagesPerRequest} images per request");
        else
            for (int i = 0; i < request.ClassLabels.Count; i++) CheckClass(violations, $"class_labels[{i}]", request.ClassLabels[i]);
        int count = CheckCount(violations, "count", request.Count, Math.Max(1, request.ClassLabels.Count));
        var sampling = CheckParams(violations, request.Params);
        CheckSeed(violations, "seed", request.Seed, Math.Max(1, request.ClassLabels.Count) * count);
        violations.ThrowIfAny();

        var images = new List<ImageRequest>();
        foreach (int label in request.ClassLabels)
            for (int k = 0; k < count; k++) images.Add(new ImageRequest(label, request.Seed + images.Count));
        return new ImageJob(images, sampling!);
    }

    /// <param name="request">The request.</param>
    /// <param name="prefix">Its path inside an enclosing message, for field names (<c>inpaint.</c> in a job), or empty.</param>
    public ImageJob Inpaint(InpaintRequest request, string prefix = "")
    {
        var violations = new FieldViolations(prefix);
        CheckClass(violations, "class_label", request.ClassLabel);
        int count = CheckCount(violations, "count", request.Count, 1);
        var sampling = CheckParams(violations, request.Params);
        CheckSeed(violations, "seed", request.Seed, count);
        int size = Model.ImageSize;
        var image = DecodePng(violations, "image_png", request.ImagePng, size, exact: true);
        var mask = DecodePng(violations, "mask_png", request.MaskPng, size, exact: true);
        violations.ThrowIfAny();

        // White in the mask means generate; the rest of the image is kept byte for byte (the command line's rule: red < 128).
        var known = new bool[size * size];
        for (int i = 0; i < known.Length; i++) known[i] = mask![i] < 128;
        return Repeat(request.ClassLabel, request.Seed, count, image!, known, sampling!);
    }

    /// <param name="request">The request.</param>
    /// <param name="prefix">Its path inside an enclosing message, for field names (<c>outpaint.</c> in a job), or empty.</param>
    public ImageJob Outpaint(OutpaintRequest request, string prefix = "")
    {
        var violations = new FieldViolations(prefix);
        CheckClass(violations, "class_label", request.ClassLabel);
        int count = CheckCount(violations, "count", request.Count, 1);
        var sampling = CheckParams(violations, request.Params);
        CheckSeed(violations, "seed", request.Seed, count);
        int size = Model.ImageSize;
        var header = PngHeader.ReadSize(request.ImagePng.Span);
        var image = DecodePng(violations, "image_png", request.ImagePng, size, exact: false);
        int x = request.X, y = request.Y;
        if (header is (int w, int h) && image is not null)
        {
            if (x == -1 && y == -1) (x, y) = ((size - w) / 2, (size - h) / 2);
            else
            {
                if (x < 0 || x + w > size) violations.Add("x", $"{x} does not place the {w}×{h} image inside the {size}×{size} canvas (0..{size - w}; x = y = -1 centres it)");
                if (y < 0 || y + h > size) violations.Add("y", $"{y} does not place the {w}×{h} image inside the {size}×{size} canvas (0..{size - h}; x = y = -1 centres it)");
            }
        }
        violations.ThrowIfAny();

        var (width, height) = header!.Value;
        var canvas = new byte[3 * size * size];
        var known = new bool[size * size];
        for (int c = 0; c < 3; c++)
            for (int row = 0; row < height; row++)
                for (int col = 0; col < width; col++)
                    canvas[c * size * size + (y + row) * size + x + col] = image![c * width * height + row * width + col];
        for (int row = 0; row < height; row++)
            for (int col = 0; col < width; col++) known[(y + row) * size + x + col] = true;
        return Repeat(request.ClassLabel, request.Seed, count, canvas, known, sampling!);
    }

    /// <summary>Checks a job's spec (exactly one of generate, inpaint, outpaint) and idempotency key; field names carry the spec's name.</summary>
    public ImageJob Job(SubmitJobRequest request)
    {
        var violations = new FieldViolations();
        CheckIdempotencyKey(violations, request.IdempotencyKey);
        if (request.SpecCase == SubmitJobRequest.SpecOneofCase.None)
            violations.Add("spec", "give one of generate, inpaint or outpaint");
        violations.ThrowIfAny();
        return request.SpecCase switch
        {
            SubmitJobRequest.SpecOneofCase.Generate => Generate(request.Generate, "generate."),
            SubmitJobRequest.SpecOneofCase.Inpaint => Inpaint(request.Inpaint, "inpaint."),
            _ => Outpaint(request.Outpaint, "outpaint."),
        };
    }

    /// <summary>Idempotency keys: optional, up to 128 characters of A-Z a-z 0-9 . _ : - (they become part of a Redis key).</summary>
    public const int MaxIdempotencyKeyLength = 128;

    static void CheckIdempotencyKey(FieldViolations violations, string key)
    {
        if (key.Length > MaxIdempotencyKeyLength)
            violations.Add("idempotency_key", $"{key.Length} characters exceed the limit of {MaxIdempotencyKeyLength}");
        else if (!key.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '-'))
            violations.Add("idempotency_key", "use only A-Z, a-z, 0-9, '.', '_', ':' and '-'");
    }

    /// <summary>Job ids are 32 lowercase hexadecimal digits; anything else is INVALID_ARGUMENT naming <c>id</c>.</summary>
    public static void CheckJobId(string id)
    {
        if (id.Length == 32 && id.All(char.IsAsciiHexDigitLower)) return;
        var violations = new FieldViolations();
        violations.Add("id", $"'{Truncate(id)}' is not a job id (32 lowercase hexadecimal digits, as SubmitJob returns)");
        violations.ThrowIfAny();
    }

    /// <summary>Checks a watch request's id and resume position (an event id: milliseconds-sequence, or empty).</summary>
    public static void CheckWatch(WatchJobRequest request)
    {
        CheckJobId(request.Id);
        if (request.AfterEventId.Length == 0 || (request.AfterEventId.Length <= 41 && FractalMesh.Jobs.EventIds.TryParse(request.AfterEventId, out _))) return;
        var violations = new FieldViolations();
        violations.Add("after_event_id", $"'{Truncate(request.AfterEventId)}' is not an event id (as in a JobEvent's event_id)");
        violations.ThrowIfAny();
    }

    static ImageJob Repeat(int label, long seed, int count, byte[] known, bool[] mask, SamplingOptions sampling) =>
        new(Enumerable.Range(0, count).Select(i => new ImageRequest(label, seed + i, known, mask)).ToArray(), sampling);

    string ClassRange => $"-1..{Model.ClassCount - 1}";

    void CheckClass(FieldViolations violations, string field, int label)
    {
        if (label < -1 || label >= Model.ClassCount)
            violations.Add(field, $"class {label} is outside {ClassRange} (the model has {Model.ClassCount} classes; -1: unconditional)");
    }

    /// <summary>Images per class; 0 means 1. <paramref name="perCount"/> is how many images each count stands for.</summary>
    int CheckCount(FieldViolations violations, string field, int count, int perCount)
    {
        if (count == 0) count = 1;
        int max = Limits.MaxImagesPerRequest;
        if (count < 1 || count > max) violations.Add(field, $"{count} is outside 1..{max}");
        else if ((long)count * perCount > max) violations.Add(field, $"{count} per class × {perCount} classes = {(long)count * perCount} images exceeds the limit of {max} per request");
        return count;
    }

    static void CheckSeed(FieldViolations violations, string field, long seed, int images)
    {
        if (seed < 0) violations.Add(field, $"{seed} is negative");
        else if (seed > long.MaxValue - images) violations.Add(field, $"{seed} + {images} images overflows a 64-bit seed");
    }

    SamplingOptions? CheckParams(FieldViolations violations, SamplingParams? p)
    {
        p ??= new SamplingParams();
        float cfg = p.Cfg == 0 ? 1f : p.Cfg;
        if (!float.IsFinite(cfg) || cfg < 1 || cfg > MaxCfg) violations.Add("params.cfg", $"{Format(p.Cfg)} is outside 1..{Format(MaxCfg)} (1: no guidance)");
        float temperature = p.Temperature == 0 ? 1f : p.Temperature;
        if (!float.IsFinite(temperature) || temperature <= 0 || temperature > MaxTemperature)
            violations.Add("params.temperature", $"{Format(p.Temperature)} is outside (0, {Format(MaxTemperature)}]");
        float filter = p.FilterThreshold == 0 ? DefaultFilterThreshold : p.FilterThreshold;
        if (!float.IsFinite(filter) || filter < 0 || filter > 1) violations.Add("params.filter_threshold", $"{Format(p.FilterThreshold)} is outside [0, 1]");
        if (p.CfgSchedule is not ("" or "linear" or "constant"))
            violations.Add("params.cfg_schedule", $"'{Truncate(p.CfgSchedule)}' is not linear or constant");
        if (p.TemperatureSchedule is not ("" or "linear" or "constant"))
            violations.Add("params.temperature_schedule", $"'{Truncate(p.TemperatureSchedule)}' is not constant or linear");
        int[] numIter = Model.DefaultNumIter;
        if (p.NumIter.Count > 0)
        {
            if (p.NumIter.Count != Model.Levels)
                violations.Add("params.num_iter", $"{p.NumIter.Count} values given; the model has {Model.Levels} levels (leave it empty for the defaults {string.Join(",", Model.DefaultNumIter)})");
            else
                for (int l = 0; l < Model.Levels; l++)
                    if (p.NumIter[l] < 1 || p.NumIter[l] > Model.SeqLens[l])
                        violations.Add($"params.num_iter[{l}]", $"{p.NumIter[l]} is outside 1..{Model.SeqLens[l]} (level {l} has {Model.SeqLens[l]} patches)");
            numIter = p.NumIter.ToArray();
        }
        return new SamplingOptions
        {
            Cfg = cfg,
            Temperature = temperature,
            FilterThreshold = filter,
            LinearCfg = p.CfgSchedule != "constant",
            LinearTemperature = p.TemperatureSchedule == "linear",
            NumIter = numIter,
        };
    }

    /// <summary>Decodes a PNG field to planar RGB after checking its length and declared size; null (and a violation) when unusable.</summary>
    byte[]? DecodePng(FieldViolations violations, string field, ByteString png, int size, bool exact)
    {
        if (png.IsEmpty) { violations.Add(field, "missing: give a PNG"); return null; }
        if (png.Length > Limits.MaxImageBytes) { violations.Add(field, $"{png.Length} bytes exceed the limit of {Limits.MaxImageBytes}"); return null; }
        if (PngHeader.ReadSize(png.Span) is not (int w, int h)) { violations.Add(field, "is not a PNG"); return null; }
        if (!PngHeader.IsComplete(png.Span)) { violations.Add(field, "is truncated or damaged (its chunks do not end with IEND at the last byte)"); return null; }
        if (exact && (w != size || h != size)) { violations.Add(field, $"{w}×{h}; the model's canvas is {size}×{size}"); return null; }
        if (!exact && (w > size || h > size)) { violations.Add(field, $"{w}×{h} is larger than the model's {size}×{size} canvas"); return null; }
        try
        {
            var (planar, dw, dh) = PngImage.Decode(png.ToByteArray(), field);
            if (dw == w && dh == h) return planar;
        }
        catch (InvalidDataException) { }
        violations.Add(field, "is not a readable PNG");
        return null;
    }

    static string Format(float v) => v.ToString(CultureInfo.InvariantCulture);
    static string Truncate(string s) => s.Length <= 32 ? s : s[..32] + "…";
}
