using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FractalMesh.Data;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// <c>fractalmesh generate | inpaint | outpaint --endpoint URL</c>: the same command served by a running gateway through
/// its REST bridge (<c>POST URL/v1/images:generate</c> etc.), so no model or libtorch is needed here. Without
/// <c>--endpoint</c> the command runs in this process (<see cref="GenerateCommand"/>). The gateway validates the request;
/// its field errors come back as usage errors naming the field.
/// </summary>
public static class RemoteGenerate
{
    /// <summary>Runs remotely when <c>--endpoint</c> is given, else in process.</summary>
    public static async Task<int> RunAsync(string mode, Options o) =>
        o.Get("endpoint") is { } endpoint ? await RunRemoteAsync(mode, endpoint, o) : GenerateCommand.Run(mode, o);

    static async Task<int> RunRemoteAsync(string mode, string endpoint, Options o)
    {
        if (mode is not ("generate" or "inpaint" or "outpaint"))
            throw new UsageException($"--endpoint: the gateway serves generate, inpaint and outpaint; run {mode} without --endpoint");
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new UsageException($"--endpoint: '{endpoint}' is not an http(s) URL (the gateway's REST address, e.g. http://localhost:5081)");
        foreach (var local in new[] { "model", "preset", "device" })
            if (o.Get(local) is not null) throw new UsageException($"--{local}: the gateway at {endpoint} chooses its model and device; drop --{local} or --endpoint");
        string classArg = o.Get("class") ?? (mode == "generate" ? "0" : throw new UsageException("missing --class"));
        int count = o.Int("count", 1);
        long seed = long.TryParse(o.Get("seed") ?? "0", NumberStyles.Integer, CultureInfo.InvariantCulture, out long s) ? s
            : throw new UsageException("--seed: not an integer");
        var parameters = new JsonObject
        {
            ["cfg"] = (float)o.Number("cfg", 1),
            ["cfgSchedule"] = o.Get("schedule") ?? "linear",
            ["temperature"] = (float)o.Number("temperature", 1),
            ["filterThreshold"] = (float)o.Number("filter", 1e-4),
        };
        if (o.Get("iters") is { } iters) parameters["numIter"] = new JsonArray(iters.Split(',').Select(v => (JsonNode)Options.ParseInt(v.Trim(), "iters")).ToArray());
        string outDir = o.Get("out") ?? "out";
        var labels = classArg.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => int.TryParse(c, NumberStyles.Integer, CultureInfo.InvariantCulture, out int l) ? l
                : throw new UsageException($"--class: '{c}' is not a class index (with --endpoint classes are indices; -1: unconditional)"))
            .ToArray();
        if (labels.Length == 0) throw new UsageException("--class: no class given");

        var body = new JsonObject { ["count"] = count, ["seed"] = seed.ToString(CultureInfo.InvariantCulture), ["params"] = parameters };
        if (mode == "generate") body["classLabels"] = new JsonArray(labels.Select(l => (JsonNode)l).ToArray());
        else
        {
            if (labels.Length != 1) throw new UsageException($"--class: {mode} takes one class");
            body["classLabel"] = labels[0];
            body["imagePng"] = ReadPng(o.Require("image"), "image");
        }
        if (mode == "inpaint") body["maskPng"] = ReadPng(o.Require("mask"), "mask");
        if (mode == "outpaint")
        {
            var (x, y) = (-1, -1); // centred
            if (o.Get("at") is { } at)
            {
                var parts = at.Split(',');
                if (parts.Length != 2 || !int.TryParse(parts[0], out x) || !int.TryParse(parts[1], out y))
                    throw new UsageException($"--at: '{at}' is not x,y");
            }
            body["x"] = x;
            body["y"] = y;
        }
        o.EnsureAllUsed();

        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        var url = new Uri(baseUri, $"/v1/images:{mode}");
        Console.WriteLine($"{mode} at {url}");
        var timer = Stopwatch.StartNew();
        HttpResponseMessage response;
        try { response = await http.PostAsync(url, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json")); }
        catch (HttpRequestException e) { Console.Error.WriteLine($"fractalmesh: --endpoint {endpoint}: {e.Message}"); return 1; }
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.BadRequest) throw new UsageException(ErrorMessage(text));
            if (!response.IsSuccessStatusCode)
            {
                Console.Error.WriteLine($"fractalmesh: the gateway answered {(int)response.StatusCode} {response.ReasonPhrase}: {ErrorMessage(text)}");
                return 1;
            }
            return WriteImages(mode, outDir, text, timer);
        }
    }

    static int WriteImages(string mode, string outDir, string json, Stopwatch timer)
    {
        using var doc = JsonDocument.Parse(json);
        Directory.CreateDirectory(outDir);
        var images = new List<byte[]>();
        int size = 0;
        foreach (var image in doc.RootElement.GetProperty("images").EnumerateArray())
        {
            var png = image.GetProperty("png").GetBytesFromBase64();
            var seed = image.GetProperty("seed");
            string seedText = seed.ValueKind == JsonValueKind.String ? seed.GetString()! : seed.GetRawText();
            string file = Path.Combine(outDir, $"{mode}-seed{seedText}.png");
            File.WriteAllBytes(file, png);
            var (planar, w, _) = PngImage.Decode(png, file);
            size = w;
            images.Add(planar);
            int label = image.TryGetProperty("classLabel", out var l) ? l.GetInt32() : 0;
            Console.WriteLine($"  seed {seedText}  class {label}  -> {file}");
        }
        if (images.Count == 0) { Console.Error.WriteLine("fractalmesh: the gateway answered no image"); return 1; }
        var (grid, gw, gh) = PngImage.Grid(images, size, Math.Min(8, images.Count));
        string gridPath = Path.GetFullPath(Path.Combine(outDir, $"{mode}-grid.png"));
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

    static string ReadPng(string path, string name) =>
        File.Exists(path) ? Convert.ToBase64String(File.ReadAllBytes(path)) : throw new UsageException($"--{name}: {path} not found");
}
