using System.Net;
using System.Text;
using System.Text.Json;
using FractalMesh.Client;
using FractalMesh.Imaging;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>Calls one of the three methods over gRPC (through <see cref="FractalMeshClient"/>) or over REST with the same request message.</summary>
public static class GatewayClient
{
    public static string Path(IMessage request) => request switch
    {
        GenerateRequest => "/v1/images:generate",
        InpaintRequest => "/v1/images:inpaint",
        OutpaintRequest => "/v1/images:outpaint",
        _ => throw new ArgumentException(request.GetType().Name),
    };

    public static async Task<GenerateResponse> CallGrpcAsync(this GatewayProcess gateway, IMessage request, CancellationToken cancel = default) =>
        request switch
        {
            GenerateRequest g => await gateway.Client.GenerateAsync(g, cancel),
            InpaintRequest i => await gateway.Client.InpaintAsync(i, cancel),
            OutpaintRequest o => await gateway.Client.OutpaintAsync(o, cancel),
            _ => throw new ArgumentException(request.GetType().Name),
        };

    /// <summary>POSTs the request as proto JSON; returns the status and the raw body.</summary>
    public static async Task<(HttpStatusCode Status, string Body)> PostRestAsync(this GatewayProcess gateway, IMessage request) =>
        await gateway.PostRestAsync(Path(request), JsonFormatter.Default.Format(request));

    public static async Task<(HttpStatusCode Status, string Body)> PostRestAsync(this GatewayProcess gateway, string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await gateway.Rest.PostAsync(path, content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public static async Task<GenerateResponse> CallRestAsync(this GatewayProcess gateway, IMessage request)
    {
        var (status, body) = await gateway.PostRestAsync(request);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {body}");
        return JsonParser.Default.Parse<GenerateResponse>(body);
    }

    /// <summary>The fields a gRPC error's google.rpc.BadRequest names.</summary>
    public static string[] ViolatedFields(RpcException e) => FractalMeshClient.FieldErrors(e).Select(v => v.Field).ToArray();

    /// <summary>The fields a REST error body's BadRequest detail names.</summary>
    public static string[] ViolatedFields(string body)
    {
        using var json = JsonDocument.Parse(body);
        if (!json.RootElement.TryGetProperty("details", out var details)) return [];
        return details.EnumerateArray()
            .Where(d => d.TryGetProperty("fieldViolations", out _))
            .SelectMany(d => d.GetProperty("fieldViolations").EnumerateArray().Select(v => v.GetProperty("field").GetString()!))
            .ToArray();
    }

    /// <summary>Decodes every image of a response, asserting it is a size×size PNG.</summary>
    public static byte[][] Pixels(GenerateResponse response, int size = 16) => response.Images.Select(image =>
    {
        var (planar, w, h) = PngImage.Decode(image.Png.ToByteArray(), "response");
        Assert.Equal((size, size), (w, h));
        return planar;
    }).ToArray();

    public static byte[] RandomImage(int seed, int width, int height)
    {
        var pixels = new byte[3 * width * height];
        new Random(seed).NextBytes(pixels);
        return pixels;
    }

    public static ByteString Png(byte[] planar, int width, int height) => ByteString.CopyFrom(PngImage.Encode(planar, width, height));
}
