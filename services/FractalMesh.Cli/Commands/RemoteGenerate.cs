using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using FractalMesh.Client;
using FractalMesh.Imaging;
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
        var request = Request(s);

        Console.WriteLine($"{s.Name} at {endpoint}{(s.Rest ? " (REST)" : "")}");
        var timer = Stopwatch.StartNew();
        GenerateResponse response;
        try
        {
            response = s.Rest ? await CallRestAsync(endpoint, s, request, cancel) : await CallGrpcAsync(endpoint, s.ApiKey, request, cancel);
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

    /// <summary>The API request for the settings: classes are indices here (the gateway knows the names), image i has seed + i.</summary>
    public static IMessage Request(GenerateSettings s)
    {
        var labels = s.Classes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => int.TryParse(c, NumberStyles.Integer, CultureInfo.InvariantCulture, out int l) ? l
                : throw new UsageException($"--class: '{c}' is not a class index (with --endpoint classes are indices; -1: unconditional)"))
            .ToArray();
        if (labels.Length == 0) throw new UsageException("--class: no class given");
        if (s.Mode != GenerateMode.Generate && labels.Length != 1) throw new UsageException($"--class: {s.Name} takes one class");
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

    static async Task<GenerateResponse> CallGrpcAsync(Uri endpoint, string? apiKey, IMessage request, CancellationToken cancel)
    {
        using var client = new FractalMeshClient(new FractalMeshClientOptions { Address = endpoint, ApiKey = apiKey });
        return request switch
        {
            GenerateRequest g => await client.GenerateAsync(g, cancel),
            InpaintRequest i => await client.InpaintAsync(i, cancel),
            OutpaintRequest o => await client.OutpaintAsync(o, cancel),
            _ => throw new ArgumentException(request.GetType().Name, nameof(request)),
        };
    }

    /// <summary>The same request as proto JSON to <c>POST URL/v1/images:MODE</c>; a 400 is a usage error with the gateway's message.</summary>
    static async Task<GenerateResponse> CallRestAsync(Uri endpoint, GenerateSettings s, IMessage request, CancellationToken cancel)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
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
