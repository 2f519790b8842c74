using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using FractalMesh.Client;
using FractalMesh.Imaging;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>fractalmesh generate | inpaint | outpaint --endpoint URL</c>: the same command served by a running gateway, over gRPC
/// through <see cref="FractalMeshClient"/> (or its REST bridge with <c>--rest</c>), so no model or libtorch is needed here.
/// The gateway validates the request; its field errors come back as usage errors naming the field.
/// </summary>
public static class RemoteGenerate
{
    /// <summary>Sends the request the settings describe and writes the images as the in-process command does.</summary>
    public static async Task<int> RunAsync(GenerateSettings s, CancellationToken cancel = default)
    {
        var endpoint = s.Endpoint ?? throw new UsageException("--endpoint: missing");
        if (s.Mode == GenerateMode.Uncrop)
            throw new UsageException("--endpoint: the gateway serves generate, inpaint and outpaint; run uncrop without --endpoint");
        foreach (var (option, value) in new[] { ("model", s.Model), ("preset", s.Preset), ("device", s.Device) })
            if (value is not null) throw new UsageException($"--{option}: the gateway at {endpoint} chooses its model and device; drop --{option} or --endpoint");
        Console.WriteLine($"{s.Name} at {endpoint}{(s.Rest ? " (REST)" : "")}");
        var timer = Stopwatch.StartNew();
        GenerateResponse response;
        try
        {
            response = s.Rest ? await CallRestAsync(endpoint, s, cancel) : await CallGrpcAsync(endpoint, s, cancel);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument)
        {
            throw new UsageException(e.Status.Detail);
        }
        catch (RpcException e)
        {
            Console.Error.WriteLine($"fractalmesh: the gateway at {endpoint} answered {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"fractalmesh: --endpoint {endpoint}: {e.Message}");
            return 1;
        }
        return WriteImages(s, response, timer);
    }

    /// <summary>
    /// The API request for the settings, classes named as the gateway's model names them (<paramref name="classNames"/>,
    /// from its description; indices go as they are, for the gateway to check); image i has seed + i.
    /// </summary>
    public static IMessage Request(GenerateSettings s, IReadOnlyList<string> classNames)
    {
        var labels = GenerateCommand.ParseClasses(s.Classes, classNames, classNum: null);
        if (s.Mode != GenerateMode.Generate && labels.Count != 1) throw new UsageException($"--class: {s.Name} takes one class");
        var parameters = new SamplingParams
        {
            Cfg = (float)s.Cfg, CfgSchedule = s.Schedule, Temperature = (float)s.Temperature, TemperatureSchedule = s.TemperatureSchedule, FilterThreshold = (float)s.Filter,
            NumIter = { s.Iters ?? [] },
        };
        switch (s.Mode)
        {
            case GenerateMode.Generate:
                return new GenerateRequest { ClassLabels = { labels }, Count = s.Count, Seed = s.Seed, Params = parameters };
            case GenerateMode.Inpaint:
                return new InpaintRequest
                {
                    ImagePng = ReadPng(s.Image, "image"), MaskPng = ReadPng(s.Mask, "mask"),
                    ClassLabel = labels[0], Count = s.Count, Seed = s.Seed, Params = parameters,
                };
            default:
                var (x, y) = (-1, -1); // centred
                if (s.At is { } at)
                {
                    var parts = at.Split(',');
                    if (parts.Length != 2 || !int.TryParse(parts[0], out x) || !int.TryParse(parts[1], out y))
                        throw new UsageException($"--at: '{at}' is not x,y");
                }
                return new OutpaintRequest { ImagePng = ReadPng(s.Image, "image"), X = x, Y = y, ClassLabel = labels[0], Count = s.Count, Seed = s.Seed, Params = parameters };
        }
    }

    /// <summary>Describes the gateway's model (class names, recommended settings), then sends the request over gRPC.</summary>
    static async Task<GenerateResponse> CallGrpcAsync(Uri endpoint, GenerateSettings s, CancellationToken cancel)
    {
        using var client = new FractalMeshClient(new FractalMeshClientOptions { Address = endpoint, ApiKey = s.ApiKey });
        var model = await client.DescribeModelAsync(cancel);
        GenerateCommand.NameTheRecommendation(model.Recommended is { } r
            ? new RecommendedSampling(r.Cfg, r.CfgSchedule, r.Temperature, r.TemperatureSchedule, r.FilterThreshold) : null, s);
        var request = Request(s, model.ClassNames);
        return request switch
        {
            GenerateRequest g => await client.GenerateAsync(g, cancel),
            InpaintRequest i => await client.InpaintAsync(i, cancel),
            OutpaintRequest o => await client.OutpaintAsync(o, cancel),
            _ => throw new ArgumentException(request.GetType().Name, nameof(request)),
        };
    }

    /// <summary>
    /// Describes the gateway's model (<c>GET URL/v1/model</c>), then sends the same request as proto JSON to
    /// <c>POST URL/v1/images:MODE</c>; a 400 is a usage error with the gateway's message.
    /// </summary>
    static async Task<GenerateResponse> CallRestAsync(Uri endpoint, GenerateSettings s, CancellationToken cancel)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        string[] names;
        using (var described = await http.GetAsync(new Uri(endpoint, "/v1/model"), cancel))
        {
            string json = await described.Content.ReadAsStringAsync(cancel);
            if (!described.IsSuccessStatusCode)
                throw new HttpRequestException($"the gateway answered {(int)described.StatusCode} {described.ReasonPhrase} to GET /v1/model: {ErrorMessage(json)}");
            using var model = JsonDocument.Parse(json);
            names = model.RootElement.GetProperty("classNames").EnumerateArray().Select(n => n.GetString() ?? "").ToArray();
            GenerateCommand.NameTheRecommendation(model.RootElement.TryGetProperty("recommended", out var r) && r.ValueKind == JsonValueKind.Object
                ? RecommendedSampling.FromJson(r.GetRawText()) : null, s);
        }
        var request = Request(s, names);
        using var body = new StringContent(JsonFormatter.Default.Format(request), Encoding.UTF8, "application/json");
        if (s.ApiKey is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", s.ApiKey);
        using var response = await http.PostAsync(new Uri(endpoint, $"/v1/images:{s.Name}"), body, cancel);
        string text = await response.Content.ReadAsStringAsync(cancel);
        if (response.StatusCode == HttpStatusCode.BadRequest) throw new UsageException(ErrorMessage(text));
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"the gateway answered {(int)response.StatusCode} {response.ReasonPhrase}: {ErrorMessage(text)}");
        return JsonParser.Default.Parse<GenerateResponse>(text);
    }

    static int WriteImages(GenerateSettings s, GenerateResponse response, Stopwatch timer)
    {
        if (response.Images.Count == 0) { Console.Error.WriteLine("fractalmesh: the gateway answered no image"); return 1; }
        Directory.CreateDirectory(s.Out);
        var images = new List<byte[]>();
        int size = 0;
        foreach (var image in response.Images)
        {
            var png = image.Png.ToByteArray();
            string file = Path.Combine(s.Out, $"{s.Name}-seed{image.Seed.ToString(CultureInfo.InvariantCulture)}.png");
            File.WriteAllBytes(file, png);
            var (planar, w, _) = PngImage.Decode(png, file);
            size = w;
            images.Add(planar);
            Console.WriteLine($"  seed {image.Seed}  class {image.ClassLabel}  -> {file}");
        }
        var (grid, gw, gh) = PngImage.Grid(images, size, Math.Min(8, images.Count));
        string gridPath = Path.GetFullPath(Path.Combine(s.Out, $"{s.Name}-grid.png"));
        File.WriteAllBytes(gridPath, PngImage.Encode(grid, gw, gh, scale: 4));
        Console.WriteLine($"{images.Count} image(s) in {timer.Elapsed.TotalSeconds:F1}s");
        Console.WriteLine($"wrote {gridPath}");
        return 0;
    }

    /// <summary>The gateway's error message (which names every bad field), or the raw body when it is not the JSON status.</summary>
    static string ErrorMessage(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("message", out var message)) return message.GetString() ?? body;
        }
        catch (JsonException) { }
        return body.Length > 300 ? body[..300] : body;
    }

    static ByteString ReadPng(string? path, string name) =>
        File.Exists(path) ? ByteString.CopyFrom(File.ReadAllBytes(path)) : throw new UsageException($"--{name}: {path} not found");
}
