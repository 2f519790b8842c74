using FractalMesh.Imaging;
using FractalMesh.Gateway.Validation;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Xunit;

namespace FractalMesh.Gateway.UnitTests;

/// <summary>The request validator against the fake generator's model (16×16, 10 classes, 2 levels of 16 patches) and small limits.</summary>
public sealed class RequestValidatorUnitTests
{
    readonly RequestValidator validator = new(new FakeGenerator(), Options.Create(new GatewayOptions { MaxImagesPerRequest = 8, MaxImageBytes = 16 * 1024 }));

    static string[] Fields(Action call)
    {
        var e = Assert.Throws<RpcException>(call);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        return e.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations.Select(v => v.Field).ToArray();
    }

    static ByteString Png(int width, int height, byte value = 0) => ByteString.CopyFrom(PngImage.Encode(Enumerable.Repeat(value, 3 * width * height).ToArray(), width, height));

    [Fact]
    public void AGenerateRequestBecomesOneImagePerClassAndCountWithSeedPlusIndexAndTheDefaults()
    {
        var job = validator.Generate(new GenerateRequest { ClassLabels = { 3, -1 }, Count = 2, Seed = (1L << 40) + 7 });
        Assert.Equal([3, 3, -1, -1], job.Images.Select(i => i.Label));
        Assert.Equal(Enumerable.Range(0, 4).Select(i => (1L << 40) + 7 + i), job.Images.Select(i => i.Seed));
        Assert.Equal(1f, job.Options.Cfg);
        Assert.Equal(1f, job.Options.Temperature);
        Assert.Equal(RequestValidator.DefaultFilterThreshold, job.Options.FilterThreshold);
        Assert.True(job.Options.LinearCfg);
        Assert.False(job.Options.LinearTemperature);
        Assert.Equal([16, 16], job.Options.NumIter);
    }

    [Fact]
    public void EveryBadFieldIsNamedInOneError()
    {
        var fields = Fields(() => validator.Generate(new GenerateRequest
        {
            ClassLabels = { 10 }, Count = 9, Seed = -1,
            Params = new SamplingParams { Cfg = 51, Temperature = -1, FilterThreshold = 2, CfgSchedule = "cubic", TemperatureSchedule = "cosine", NumIter = { 1, 17 } },
        }));
        Assert.Equal(["class_labels[0]", "count", "params.cfg", "params.temperature", "params.filter_threshold", "params.cfg_schedule", "params.temperature_schedule", "params.num_iter[1]", "seed"], fields);
    }

    [Fact]
    public void ClassesTimesCountAboveTheLimitAndASeedThatWouldOverflowAreRefused()
    {
        Assert.Equal(["count"], Fields(() => validator.Generate(new GenerateRequest { ClassLabels = { 1, 2, 3 }, Count = 3 })));
        Assert.Equal(["seed"], Fields(() => validator.Generate(new GenerateRequest { ClassLabels = { 1 }, Count = 2, Seed = long.MaxValue - 1 })));
        Assert.Equal(["params.num_iter"], Fields(() => validator.Generate(new GenerateRequest { ClassLabels = { 1 }, Params = new SamplingParams { NumIter = { 4 } } })));
    }

    [Fact]
    public void InpaintKeepsWhatTheMaskLeavesBlackAndChecksBothPngs()
    {
        var mask = new byte[3 * 256];
        for (int i = 0; i < 128; i++) mask[i] = mask[256 + i] = mask[512 + i] = 255;   // top half white: generate
        var job = validator.Inpaint(new InpaintRequest { ImagePng = Png(16, 16, 9), MaskPng = ByteString.CopyFrom(PngImage.Encode(mask, 16, 16)), ClassLabel = 2, Count = 2, Seed = 5 });
        Assert.Equal(2, job.Images.Count);
        Assert.All(job.Images, image => Assert.Equal(Enumerable.Range(0, 256).Select(i => i >= 128), image.KnownMask!));
        Assert.Equal([5L, 6L], job.Images.Select(i => i.Seed));

        Assert.Equal(["image_png", "mask_png"], Fields(() => validator.Inpaint(new InpaintRequest { ImagePng = Png(8, 8), MaskPng = ByteString.CopyFromUtf8("not a png"), ClassLabel = 2 })));
    }

    [Fact]
    public void OutpaintCentresTheImageOrPlacesItAndRefusesAPlaceOffTheCanvas()
    {
        var centred = validator.Outpaint(new OutpaintRequest { ImagePng = Png(8, 8, 200), X = -1, Y = -1, ClassLabel = 1 });
        var known = centred.Images[0].KnownMask!;
        Assert.Equal(64, known.Count(k => k));
        Assert.True(known[4 * 16 + 4] && known[11 * 16 + 11] && !known[3 * 16 + 3]);
        Assert.Equal(["x", "y"], Fields(() => validator.Outpaint(new OutpaintRequest { ImagePng = Png(8, 8), X = 9, Y = -2, ClassLabel = 1 })));
        Assert.Equal(["image_png"], Fields(() => validator.Outpaint(new OutpaintRequest { ImagePng = Png(17, 4), ClassLabel = 1 })));
    }

    [Fact]
    public void AJobNamesItsSpecInEveryFieldAndChecksTheKeyAndIds()
    {
        Assert.Equal(["generate.params.cfg"], Fields(() => validator.Job(new SubmitJobRequest { Generate = new GenerateRequest { ClassLabels = { 1 }, Params = new SamplingParams { Cfg = 0.5f } } })));
        Assert.Equal(["spec"], Fields(() => validator.Job(new SubmitJobRequest())));
        Assert.Equal(["idempotency_key"], Fields(() => validator.Job(new SubmitJobRequest { IdempotencyKey = "a b", Generate = new GenerateRequest { ClassLabels = { 1 } } })));
        Assert.Equal(["id"], Fields(() => RequestValidator.CheckJobId("ABC")));
        RequestValidator.CheckJobId(new string('a', 32));
        Assert.Equal(["after_event_id"], Fields(() => RequestValidator.CheckWatch(new WatchJobRequest { Id = new string('0', 32), AfterEventId = "later" })));
    }
}
