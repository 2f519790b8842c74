using FractalMesh.Imaging;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Xunit;
using static FractalMesh.Gateway.Tests.GatewayClient;

namespace FractalMesh.Gateway.Tests;

/// <summary>Generate, inpaint and outpaint against a real gateway process, over gRPC and REST.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ImageGenerationTests(GatewayProcess gateway)
{
    static GenerateRequest TwoClasses(long seed) => new()
    {
        ClassLabels = { 3, 4 },
        Count = 2,
        Seed = seed,
        Params = new SamplingParams { NumIter = { 2, 2 } },
    };

    static void AssertSeedsAndLabels(GenerateResponse response, long seed, params int[] labels)
    {
        Assert.Equal(labels.Length, response.Images.Count);
        for (int i = 0; i < labels.Length; i++)
        {
            Assert.Equal(seed + i, response.Images[i].Seed);
            Assert.Equal(labels[i], response.Images[i].ClassLabel);
        }
        Assert.True(response.Seconds > 0);
    }

    [Fact]
    public async Task DescribeModelOverGrpcAnswersWhatGetV1ModelDoes()
    {
        var described = await gateway.Client.DescribeModelAsync();
        using var json = System.Text.Json.JsonDocument.Parse(await gateway.Rest.GetStringAsync("/v1/model"));
        var m = json.RootElement;
        Assert.Equal(16, described.ImageSize); // the tiny reference model
        Assert.Equal(m.GetProperty("imageSize").GetInt32(), described.ImageSize);
        Assert.Equal(m.GetProperty("classCount").GetInt32(), described.ClassCount);
        Assert.Equal(m.GetProperty("classNames").EnumerateArray().Select(e => e.GetString()), described.ClassNames);
        Assert.Equal(m.GetProperty("levels").GetInt32(), described.Levels);
        Assert.Equal(m.GetProperty("patchesPerLevel").EnumerateArray().Select(e => e.GetInt32()), described.PatchesPerLevel);
        Assert.Equal(m.GetProperty("defaultNumIter").EnumerateArray().Select(e => e.GetInt32()), described.DefaultNumIter);
        Assert.Equal(GatewayProcess.MaxImagesPerRequest, described.Limits.MaxImagesPerRequest);
        Assert.Equal(m.GetProperty("limits").GetProperty("maxImageBytes").GetInt32(), described.Limits.MaxImageBytes);
        Assert.Equal(m.GetProperty("limits").GetProperty("maxCfg").GetSingle(), described.Limits.MaxCfg);
        // The reference checkpoint carries no recommended settings.
        Assert.Equal(System.Text.Json.JsonValueKind.Null, m.GetProperty("recommended").ValueKind);
        Assert.Null(described.Recommended);
    }

    [Fact]
    public async Task GenerateOverGrpcAnswersOnePngPerImageWithItsSeed()
    {
        var response = await gateway.CallGrpcAsync(TwoClasses(10));
        AssertSeedsAndLabels(response, 10, 3, 3, 4, 4);
        var pixels = Pixels(response);
        Assert.Equal(4, pixels.Distinct(new BytesComparer()).Count()); // four seeds, four different images
    }

    [Fact]
    public async Task GenerateOverRestAnswersOnePngPerImageWithItsSeed()
    {
        var (status, body) = await gateway.PostRestAsync("/v1/images:generate",
            """{ "classLabels": [3, 4], "count": 2, "seed": "10", "params": { "numIter": [2, 2] } }""");
        Assert.True(status == System.Net.HttpStatusCode.OK, body);
        var response = JsonParser.Default.Parse<GenerateResponse>(body);
        AssertSeedsAndLabels(response, 10, 3, 3, 4, 4);
        Pixels(response);
        Assert.Contains("\"seed\":\"13\"", body.Replace(" ", "")); // int64 travels as a JSON string (proto3 JSON mapping)
    }

    [Fact]
    public async Task SameRequestAndSeedGiveTheSameBytesOverGrpcRestAndTheInProcessSampler()
    {
        var request = new GenerateRequest
        {
            ClassLabels = { -1, 7 },
            Count = 2,
            Seed = 1234,
            Params = new SamplingParams { Cfg = 2.5f, CfgSchedule = "constant", Temperature = 0.8f, TemperatureSchedule = "linear", FilterThreshold = 1e-3f, NumIter = { 4, 2 } },
        };
        var overGrpc = await gateway.CallGrpcAsync(request);
        var overRest = await gateway.CallRestAsync(request);
        AssertSeedsAndLabels(overGrpc, 1234, -1, -1, 7, 7);
        for (int i = 0; i < 4; i++) Assert.Equal(overGrpc.Images[i].Png, overRest.Images[i].Png);

        using var model = ModelCheckpoint.Open(GatewayProcess.ModelFolder);
        var images = new[] { -1, -1, 7, 7 }.Select((label, i) => new ImageRequest(label, 1234 + i)).ToArray();
        var options = new SamplingOptions { Cfg = 2.5f, LinearCfg = false, Temperature = 0.8f, LinearTemperature = true, FilterThreshold = 1e-3f, NumIter = [4, 2] };
        var bytes = new FractalSampler(model).Generate(images, options);
        var served = Pixels(overGrpc);
        for (int i = 0; i < 4; i++)
        {
            var expected = bytes.AsSpan(i * 768, 768).ToArray();
            Assert.Equal(expected, served[i]);
            Assert.Equal(PngImage.Encode(expected, 16, 16), overGrpc.Images[i].Png.ToByteArray());
        }
    }

    [Fact]
    public async Task ASeedGivesTheSameImageAloneOrInsideALargerRequest()
    {
        var alone = await gateway.CallGrpcAsync(new GenerateRequest { ClassLabels = { 4 }, Seed = 12, Params = new SamplingParams { NumIter = { 2, 2 } } });
        var inside = await gateway.CallGrpcAsync(TwoClasses(10));
        Assert.Equal(12, alone.Images[0].Seed);
        Assert.Equal(inside.Images[2].Png, alone.Images[0].Png); // image 2 of seed 10 is class 4 with seed 12
    }

    [Fact]
    public async Task InpaintKeepsUnmaskedPixelsByteForByte()
    {
        var image = RandomImage(1, 16, 16);
        var mask = new byte[3 * 256];
        for (int i = 0; i < 256; i++) if (i % 16 >= 8) mask[i] = mask[256 + i] = mask[512 + i] = 255; // white (right half): generate
        var request = new InpaintRequest
        {
            ImagePng = Png(image, 16, 16),
            MaskPng = Png(mask, 16, 16),
            ClassLabel = 2,
            Count = 2,
            Seed = 50,
            Params = new SamplingParams { NumIter = { 3, 2 } },
        };
        var overGrpc = await gateway.CallGrpcAsync(request);
        var overRest = await gateway.CallRestAsync(request);
        AssertSeedsAndLabels(overGrpc, 50, 2, 2);
        foreach (var pixels in Pixels(overGrpc))
        {
            int changed = 0;
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 256; p++)
                {
                    int at = c * 256 + p;
                    if (p % 16 < 8) Assert.Equal(image[at], pixels[at]);
                    else if (pixels[at] != image[at]) changed++;
                }
            Assert.True(changed > 100, $"only {changed} masked values were regenerated");
        }
        Assert.Equal(overGrpc.Images.Select(i => i.Png), overRest.Images.Select(i => i.Png));
    }

    [Theory]
    [InlineData(2, 5, 2, 5)]
    [InlineData(-1, -1, 4, 4)] // centred
    public async Task OutpaintKeepsThePlacedImageByteForByte(int x, int y, int expectX, int expectY)
    {
        var image = RandomImage(2, 8, 8);
        var request = new OutpaintRequest { ImagePng = Png(image, 8, 8), X = x, Y = y, ClassLabel = 5, Seed = 70, Params = new SamplingParams { NumIter = { 3, 2 } } };
        var response = await gateway.CallRestAsync(request);
        AssertSeedsAndLabels(response, 70, 5);
        var pixels = Pixels(response)[0];
        for (int c = 0; c < 3; c++)
            for (int row = 0; row < 8; row++)
                for (int col = 0; col < 8; col++)
                    Assert.Equal(image[c * 64 + row * 8 + col], pixels[c * 256 + (expectY + row) * 16 + expectX + col]);
    }

    sealed class BytesComparer : IEqualityComparer<byte[]>
    {
        public bool Equals(byte[]? a, byte[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(byte[] bytes) => bytes.Length == 0 ? 0 : HashCode.Combine(bytes.Length, bytes[0], bytes[^1], bytes[bytes.Length / 2]);
    }
}
