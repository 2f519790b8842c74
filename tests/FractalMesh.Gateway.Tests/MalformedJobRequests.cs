using System.Net;
using System.Text;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;
using static FractalMesh.Gateway.Tests.GatewayClient;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// Random job requests that are each wrong in at least one way (a bad field of the spec, a bad id, a bad resume position,
/// an oversized message, junk JSON), sent over gRPC or REST, with the answers a clean rejection may have.
/// </summary>
public sealed class MalformedJobRequests(GatewayProcess gateway, Random random)
{
    /// <summary>One malformed call: what it is, and the call returning how it was answered ("grpc:Code" or "rest:NNN").</summary>
    public sealed record Case(string Kind, StatusCode[] Allowed, Func<Task<string>> Send);

    static readonly ByteString Canvas = Png(RandomImage(5, 16, 16), 16, 16);

    public Case Next(int i)
    {
        bool rest = i % 2 == 1;
        return (i / 2 % 9) switch
        {
            0 => Submit("generate with bad fields", new SubmitJobRequest { Generate = BadGenerate(1 + random.Next(3)) }, rest),
            1 => Submit("inpaint with bad images or fields", new SubmitJobRequest { Inpaint = BadInpaint(out string what) }, rest, what),
            2 => Submit("outpaint with bad placement or image", new SubmitJobRequest { Outpaint = BadOutpaint() }, rest),
            3 => Submit("no spec or a bad idempotency key", BadEnvelope(), rest),
            4 => ById("get", BadOrUnknownId(out var unknown), unknown, rest),
            5 => ById("cancel", BadOrUnknownId(out var unknown2), unknown2, rest),
            6 => Watch(rest),
            7 => Huge(rest),
            _ => rest ? Junk() : Submit("generate with bad fields", new SubmitJobRequest { Generate = BadGenerate(3) }, rest),
        };
    }

    Case Submit(string kind, SubmitJobRequest request, bool rest, string? what = null) => new(what is null ? kind : $"{kind}: {what}", [StatusCode.InvalidArgument], rest
        ? () => PostAsync("/v1/jobs", JsonFormatter.Default.Format(request))
        : () => GrpcAsync(async () => await gateway.Jobs.SubmitJobAsync(request)));

    Case ById(string verb, string id, bool unknown, bool rest)
    {
        StatusCode[] allowed = unknown ? [StatusCode.NotFound] : [StatusCode.InvalidArgument];
        if (rest)
        {
            var method = verb == "get" ? HttpMethod.Get : HttpMethod.Delete;
            return new($"{verb} {(unknown ? "unknown" : "bad")} id", allowed, () => SendAsync(new HttpRequestMessage(method, "/v1/jobs/" + Uri.EscapeDataString(id))));
        }
        return new($"{verb} {(unknown ? "unknown" : "bad")} id", allowed, verb == "get"
            ? () => GrpcAsync(async () => await gateway.Jobs.GetJobAsync(new GetJobRequest { Id = id }))
            : () => GrpcAsync(async () => await gateway.Jobs.CancelJobAsync(new CancelJobRequest { Id = id })));
    }

    Case Watch(bool rest)
    {
        string id = BadOrUnknownId(out bool unknown);
        string after = "";
        if (unknown && random.Next(2) == 0)
        {
            after = "x" + RandomText(random.Next(60)); // a bad resume position is refused before the id is looked up
            unknown = false;
        }
        StatusCode[] allowed = unknown ? [StatusCode.NotFound] : [StatusCode.InvalidArgument];
        if (rest)
        {
            string query = after.Length > 0 ? "?afterEventId=" + Uri.EscapeDataString(after) : "";
            return new("watch", allowed, () => SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{Uri.EscapeDataString(id)}/events{query}")));
        }
        return new("watch", allowed, () => GrpcAsync(async () =>
        {
            using var call = gateway.Jobs.WatchJob(new WatchJobRequest { Id = id, AfterEventId = after });
            await call.ResponseStream.MoveNext(CancellationToken.None);
        }));
    }

    /// <summary>Past Gateway:MaxRequestBytes: gRPC refuses the message (RESOURCE_EXHAUSTED), Kestrel the body (400).</summary>
    Case Huge(bool rest)
    {
        var png = new byte[GatewayProcess.MaxRequestBytes + 1 + random.Next(GatewayProcess.MaxRequestBytes)];
        random.NextBytes(png);
        var request = new SubmitJobRequest { Inpaint = new InpaintRequest { ImagePng = ByteString.CopyFrom(png), MaskPng = Canvas, ClassLabel = 1 } };
        return new("huge payload", [StatusCode.ResourceExhausted], rest
            ? () => PostAsync("/v1/jobs", JsonFormatter.Default.Format(request))
            : () => GrpcAsync(async () => await gateway.Jobs.SubmitJobAsync(request)));
    }

    Case Junk()
    {
        string[] bodies =
        [
            RandomText(random.Next(200)),
            "{\"generate\": " + RandomText(10) + "}",
            "{\"generate\": {\"classLabels\": \"one\"}}",
            "{\"generate\": {\"count\": \"" + RandomText(5) + "\"}}",
            "{\"inpaint\": {\"imagePng\": \"not base64 !!\"}}",
            "[1, 2, 3]",
            "{\"generate\": {\"classLabels\": [1]}, \"inpaint\": {\"classLabel\": 1}}", // two specs of a oneof
            "{\"idempotencyKey\": 42, \"generate\": {\"classLabels\": [1]}}",
            new string('[', 5000),
        ];
        string body = bodies[random.Next(bodies.Length)];
        return new("junk JSON", [StatusCode.InvalidArgument], () => PostAsync("/v1/jobs", body));
    }

    GenerateRequest BadGenerate(int mistakes)
    {
        var request = new GenerateRequest { ClassLabels = { 1 }, Count = 1, Seed = 3, Params = new SamplingParams { NumIter = { 2, 2 } } };
        for (int m = 0; m < mistakes; m++)
        {
            switch (random.Next(11))
            {
                case 0: request.ClassLabels.Add(random.Next(2) == 0 ? random.Next(10, int.MaxValue) : random.Next(int.MinValue, -1)); break;
                case 1: request.Count = random.Next(2) == 0 ? random.Next(257, int.MaxValue) : random.Next(int.MinValue, 0); break;
                case 2: request.Seed = -1 - random.NextInt64(long.MaxValue); break;
                case 3: request.Params.Cfg = Pick(float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0.5f, -3f, 51f, 1e30f); break;
                case 4: request.Params.Temperature = Pick(float.NaN, float.PositiveInfinity, -1f, -1e-6f, 100.5f, 1e20f); break;
                case 5: request.Params.FilterThreshold = Pick(float.NaN, -0.5f, 1.5f, float.PositiveInfinity); break;
                case 6: request.Params.CfgSchedule = "x" + RandomText(random.Next(40)); break;
                case 7: request.Params.NumIter.Add(random.Next(1, 5)); break; // three entries for a two-level model
                case 8: request.Params.NumIter[random.Next(2)] = Pick(0, -1, 17, int.MaxValue, int.MinValue); break;
                case 9: request.ClassLabels.Clear(); break;
                default: request.ClassLabels.AddRange(Enumerable.Range(0, 257).Select(_ => random.Next(10))); break;
            }
        }
        return request;
    }

    InpaintRequest BadInpaint(out string what)
    {
        var request = new InpaintRequest { ImagePng = Canvas, MaskPng = Canvas, ClassLabel = 1, Seed = 3, Params = new SamplingParams { NumIter = { 2, 2 } } };
        var junk = new byte[random.Next(1, 2000)];
        random.NextBytes(junk);
        switch (random.Next(6))
        {
            case 0: request.ImagePng = ByteString.CopyFrom(junk); what = $"{junk.Length} random bytes for image_png"; break;
            case 1: request.MaskPng = ByteString.Empty; what = "no mask"; break;
            case 2: request.ImagePng = Png(RandomImage(random.Next(), 8, 8), 8, 8); what = "8×8 image"; break;
            case 3:
                int keep = random.Next(8, Canvas.Length - 1);
                request.MaskPng = ByteString.CopyFrom(Canvas.Span[..keep]);
                what = $"mask truncated to {keep} of {Canvas.Length} bytes";
                break;
            case 4: request.ClassLabel = random.Next(10, 1000); what = $"class {request.ClassLabel}"; break;
            default: request.ImagePng = ByteString.Empty; request.Count = -5; what = "no image, count -5"; break;
        }
        return request;
    }

    OutpaintRequest BadOutpaint()
    {
        var request = new OutpaintRequest { ImagePng = Png(RandomImage(6, 8, 8), 8, 8), X = 0, Y = 0, ClassLabel = 1, Seed = 3, Params = new SamplingParams { NumIter = { 2, 2 } } };
        switch (random.Next(4))
        {
            case 0: request.X = random.Next(9, int.MaxValue); break;
            case 1: request.Y = random.Next(int.MinValue, -1); break;
            case 2: request.ImagePng = Png(RandomImage(7, 20, 20), 20, 20); break; // larger than the canvas
            default:
                var junk = new byte[random.Next(1, 500)];
                random.NextBytes(junk);
                request.ImagePng = ByteString.CopyFrom(junk);
                break;
        }
        return request;
    }

    SubmitJobRequest BadEnvelope()
    {
        var good = new GenerateRequest { ClassLabels = { 1 }, Params = new SamplingParams { NumIter = { 1, 1 } } };
        return random.Next(3) switch
        {
            0 => new SubmitJobRequest { IdempotencyKey = RandomText(random.Next(10)) },                              // no spec
            1 => new SubmitJobRequest { Generate = good, IdempotencyKey = new string('k', 129 + random.Next(5000)) }, // too long
            _ => new SubmitJobRequest { Generate = good, IdempotencyKey = "key " + RandomText(1 + random.Next(20)) + "/é" },
        };
    }

    /// <summary>An id that is malformed, or (<paramref name="unknown"/>) well formed but never issued.</summary>
    string BadOrUnknownId(out bool unknown)
    {
        unknown = random.Next(3) == 0;
        if (unknown) return Convert.ToHexStringLower(RandomBytes(16));
        return random.Next(6) switch
        {
            0 => Convert.ToHexString(RandomBytes(16)),            // upper case
            1 => Convert.ToHexStringLower(RandomBytes(17))[..33],  // one digit too many
            2 => "../../" + RandomText(10),
            3 => new string('a', 31) + "g",
            4 => RandomText(1 + random.Next(3000)),
            _ => "",
        };
    }

    byte[] RandomBytes(int n)
    {
        var bytes = new byte[n];
        random.NextBytes(bytes);
        return bytes;
    }

    string RandomText(int length)
    {
        string[] alphabet = ["a", "b", "c", "X", "Z", "0", "1", "9", " ", "-", "_", ":", ".", "/", "\\", "\"", "'", "{", "}", "[", "]",
            "%", "?", "#", "&", "=", "+", "é", "ß", "漢", "😀", "\t", "\n"];
        var text = new StringBuilder();
        while (text.Length < length) text.Append(alphabet[random.Next(alphabet.Length)]);
        return text.ToString();
    }

    T Pick<T>(params T[] values) => values[random.Next(values.Length)];

    static async Task<string> GrpcAsync(Func<Task> call)
    {
        try { await call(); return "grpc:OK"; }
        catch (RpcException e) { return $"grpc:{e.StatusCode}"; }
    }

    Task<string> PostAsync(string path, string json) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") });

    async Task<string> SendAsync(HttpRequestMessage message)
    {
        using (message)
        using (var response = await gateway.Rest.SendAsync(message))
        {
            await response.Content.ReadAsStringAsync();
            return $"rest:{(int)response.StatusCode}";
        }
    }

    /// <summary>A clean rejection: one of the allowed gRPC codes; over REST any 4xx but 429 (routing answers 404/405 for ids that cannot be a path segment).</summary>
    public static bool IsClean(Case c, string outcome) => outcome.StartsWith("grpc:", StringComparison.Ordinal)
        ? c.Allowed.Any(code => outcome == $"grpc:{code}")
        : int.Parse(outcome["rest:".Length..]) is >= 400 and < 500 and not (int)HttpStatusCode.TooManyRequests;
}
