using System.Net;
using System.Text.Json;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Grpc.Core;
using Xunit;
using static FractalMesh.Gateway.Tests.GatewayClient;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// Every kind of bad request gets INVALID_ARGUMENT over gRPC and HTTP 400 over REST, with a google.rpc.BadRequest naming
/// the field, and the gateway goes on serving. The tiny model: 16×16, 10 classes, 2 levels of 16 patches.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class RequestValidationTests(GatewayProcess gateway)
{
    static SamplingParams Fast => new() { NumIter = { 1, 1 } };
    static GenerateRequest Generate(Action<GenerateRequest> change)
    {
        var request = new GenerateRequest { ClassLabels = { 1 }, Count = 1, Seed = 3, Params = Fast };
        change(request);
        return request;
    }

    static readonly ByteString Canvas = Png(RandomImage(5, 16, 16), 16, 16), Small = Png(RandomImage(6, 8, 8), 8, 8);
    static InpaintRequest Inpaint(Action<InpaintRequest> change)
    {
        var request = new InpaintRequest { ImagePng = Canvas, MaskPng = Canvas, ClassLabel = 1, Seed = 3, Params = Fast };
        change(request);
        return request;
    }
    static OutpaintRequest Outpaint(Action<OutpaintRequest> change)
    {
        var request = new OutpaintRequest { ImagePng = Small, X = 0, Y = 0, ClassLabel = 1, Seed = 3, Params = Fast };
        change(request);
        return request;
    }

    /// <summary>A PNG whose header is valid but whose data is not.</summary>
    static ByteString Truncated => ByteString.CopyFrom(Canvas.Span[..40]);
    /// <summary>Starts like a 16×16 PNG but is larger than Gateway:MaxImageBytes.</summary>
    static ByteString Oversized => ByteString.CopyFrom([.. Canvas.Span[..33], .. new byte[GatewayProcess.MaxImageBytes]]);

    /// <summary>Each bad request and the field it must be refused for.</summary>
    public static readonly Dictionary<string, (IMessage Request, string Field)> Cases = new()
    {
        ["class above the range"] = (Generate(r => r.ClassLabels[0] = 10), "class_labels[0]"),
        ["class below -1"] = (Generate(r => r.ClassLabels.Add(-2)), "class_labels[1]"),
        ["no class"] = (Generate(r => r.ClassLabels.Clear()), "class_labels"),
        ["negative count"] = (Generate(r => r.Count = -1), "count"),
        ["count above the limit"] = (Generate(r => r.Count = GatewayProcess.MaxImagesPerRequest + 1), "count"),
        ["classes × count above the limit"] = (Generate(r => { r.ClassLabels.Add(2); r.ClassLabels.Add(3); r.Count = 3; }), "count"),
        ["negative seed"] = (Generate(r => r.Seed = -1), "seed"),
        ["cfg below 1"] = (Generate(r => r.Params.Cfg = 0.5f), "params.cfg"),
        ["cfg above 50"] = (Generate(r => r.Params.Cfg = 51), "params.cfg"),
        ["cfg NaN"] = (Generate(r => r.Params.Cfg = float.NaN), "params.cfg"),
        ["negative temperature"] = (Generate(r => r.Params.Temperature = -1), "params.temperature"),
        ["temperature above 100"] = (Generate(r => r.Params.Temperature = 101), "params.temperature"),
        ["filter threshold above 1"] = (Generate(r => r.Params.FilterThreshold = 1.5f), "params.filter_threshold"),
        ["negative filter threshold"] = (Generate(r => r.Params.FilterThreshold = -0.1f), "params.filter_threshold"),
        ["unknown cfg schedule"] = (Generate(r => r.Params.CfgSchedule = "cosine"), "params.cfg_schedule"),
        ["unknown temperature schedule"] = (Generate(r => r.Params.TemperatureSchedule = "Linear"), "params.temperature_schedule"),
        ["num_iter of the wrong length"] = (Generate(r => r.Params.NumIter.Add(1)), "params.num_iter"),
        ["num_iter of 0"] = (Generate(r => r.Params.NumIter[0] = 0), "params.num_iter[0]"),
        ["num_iter above the patches"] = (Generate(r => r.Params.NumIter[1] = 17), "params.num_iter[1]"),
        ["inpaint without an image"] = (Inpaint(r => r.ImagePng = ByteString.Empty), "image_png"),
        ["inpaint image not a PNG"] = (Inpaint(r => r.ImagePng = ByteString.CopyFromUtf8("GIF89a, not a PNG at all, really")), "image_png"),
        ["inpaint image not the canvas size"] = (Inpaint(r => r.ImagePng = Small), "image_png"),
        ["inpaint image over the byte limit"] = (Inpaint(r => r.ImagePng = Oversized), "image_png"),
        ["inpaint without a mask"] = (Inpaint(r => r.MaskPng = ByteString.Empty), "mask_png"),
        ["inpaint mask of another size"] = (Inpaint(r => r.MaskPng = Small), "mask_png"),
        ["inpaint mask truncated"] = (Inpaint(r => r.MaskPng = Truncated), "mask_png"),
        ["inpaint class above the range"] = (Inpaint(r => r.ClassLabel = 10), "class_label"),
        ["inpaint count above the limit"] = (Inpaint(r => r.Count = 100), "count"),
        ["outpaint image larger than the canvas"] = (Outpaint(r => r.ImagePng = Png(RandomImage(7, 32, 32), 32, 32)), "image_png"),
        ["outpaint x outside the canvas"] = (Outpaint(r => r.X = 12), "x"),
        ["outpaint negative y"] = (Outpaint(r => r.Y = -5), "y"),
        ["outpaint without an image"] = (Outpaint(r => r.ImagePng = ByteString.Empty), "image_png"),
        ["outpaint bad cfg"] = (Outpaint(r => r.Params.Cfg = 1000), "params.cfg"),
    };

    public static TheoryData<string> CaseNames => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task BadRequestOverGrpcIsInvalidArgumentNamingTheField(string name)
    {
        var (request, field) = Cases[name];
        var e = await Assert.ThrowsAsync<RpcException>(() => gateway.CallGrpcAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains(field, ViolatedFields(e));
        Assert.Contains(field, e.Status.Detail);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task BadRequestOverRestIs400NamingTheField(string name)
    {
        var (request, field) = Cases[name];
        var (status, body) = await gateway.PostRestAsync(request);
        Assert.True(status == HttpStatusCode.BadRequest, $"{status}: {body}");
        Assert.Contains(field, ViolatedFields(body));
        using var json = JsonDocument.Parse(body);
        Assert.Equal(3, json.RootElement.GetProperty("code").GetInt32()); // INVALID_ARGUMENT
    }

    [Theory]
    [InlineData("{ \"classLabels\": [1], ")]                   // not JSON
    [InlineData("{ \"classLabels\": [1], \"count\": \"many\" }")] // a string for a number
    [InlineData("{ \"classLabels\": \"one\" }")]                // a string for a list
    public async Task MalformedJsonIs400(string body)
    {
        var (status, text) = await gateway.PostRestAsync("/v1/images:generate", body);
        Assert.True(status == HttpStatusCode.BadRequest, $"{status}: {text}");
    }

    [Fact]
    public async Task ManyErrorsInOneRequestAreAllNamed()
    {
        var request = Generate(r => { r.ClassLabels[0] = 99; r.Params.Cfg = 99; r.Params.CfgSchedule = "x"; r.Seed = -4; });
        var e = await Assert.ThrowsAsync<RpcException>(() => gateway.CallGrpcAsync(request));
        string[] expected = ["class_labels[0]", "params.cfg", "params.cfg_schedule", "seed"];
        Assert.Equal(expected, ViolatedFields(e).Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public async Task TheGatewayServesAGoodRequestAfterEveryBadOne()
    {
        foreach (var (request, _) in Cases.Values)
        {
            await Assert.ThrowsAsync<RpcException>(() => gateway.CallGrpcAsync(request));
            Assert.Equal(HttpStatusCode.BadRequest, (await gateway.PostRestAsync(request)).Status);
        }
        var good = await gateway.CallGrpcAsync(Generate(_ => { }));
        Assert.Single(good.Images);
        Assert.Single((await gateway.CallRestAsync(Generate(_ => { }))).Images);
        Assert.True(gateway.IsRunning, gateway.Log);
    }
}
