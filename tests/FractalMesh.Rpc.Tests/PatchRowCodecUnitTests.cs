using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Level;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Rpc.Tests;

public class PatchRowCodecUnitTests
{
    const int Rows = 5, CondCount = 5, Width = 7, Size = 4;

    static LevelShape Shape => new(Level: 1, PatchSize: Size, CondWidth: Width, MinConds: CondCount, MaxConds: CondCount, NumIterCount: 1);

    /// <summary>Random conditions (extreme values included), partly known pixels in rows 1 and 3, per-row parameters.</summary>
    static PatchRequest Request(bool guided)
    {
        manual_seed(3);
        var rng = new Random(4);
        var known = new byte[Rows * 3 * Size * Size];
        rng.NextBytes(known);
        var mask = new bool[Rows * Size * Size];
        for (int i = 0; i < Size * Size; i += 3) { mask[Size * Size + i] = true; mask[3 * Size * Size + i / 2] = true; }
        Tensor Cond(int k)
        {
            var t = randn(Rows, Width) * 100;
            t[0, k] = float.Epsilon;   // a subnormal survives too
            t[1, k] = -0f;
            return t;
        }
        return new PatchRequest
        {
            Conds = Enumerable.Range(0, CondCount).Select(Cond).ToArray(),
            NullConds = guided ? Enumerable.Range(0, CondCount).Select(Cond).ToArray() : null,
            Size = Size,
            KnownPixels = known,
            KnownMask = mask,
            Cfg = [1f, 2f, 3.5f, 1f, 7f],
            Temperature = [1f, 0.5f, 2f, 1f, 1.25f],
            FilterThreshold = [1e-4f, 0f, 1e-3f, 1e-4f, 0.5f],
            NumIter = [4, 2],
            Streams = Enumerable.Range(0, Rows).Select(i => RowStream.ForImage(1000 + i)).ToArray(),
            LinearCfg = guided,
            LinearTemperature = !guided,
        };
    }

    static bool Bitwise(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits)
            .SequenceEqual(b.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARequestSurvivesTheWireBitwise(bool guided)
    {
        using var request = Request(guided);
        var message = PatchRowCodec.ToMessage(request, level: 1);
        var wire = SamplePatchesRequest.Parser.ParseFrom(message.ToByteArray());
        PatchRowCodec.Validate(wire, Shape);
        using var back = PatchRowCodec.ToPatchRequest(wire);

        Assert.Equal(request.Conds.Length, back.Conds.Length);
        for (int k = 0; k < CondCount; k++) Assert.True(Bitwise(request.Conds[k], back.Conds[k]), $"condition {k}");
        Assert.Equal(guided, back.Guided);
        if (guided) for (int k = 0; k < CondCount; k++) Assert.True(Bitwise(request.NullConds![k], back.NullConds![k]), $"null condition {k}");
        Assert.Equal(request.Size, back.Size);
        Assert.Equal(request.KnownMask, back.KnownMask);
        // Pixels outside the mask are meaningless; inside it they must be equal.
        for (int i = 0; i < request.KnownMask.Length; i++)
            if (request.KnownMask[i])
                for (int c = 0; c < 3; c++)
                {
                    int r = i / (Size * Size), p = i % (Size * Size), at = (r * 3 + c) * Size * Size + p;
                    Assert.Equal(request.KnownPixels[at], back.KnownPixels[at]);
                }
        Assert.Equal(request.Cfg, back.Cfg);
        Assert.Equal(request.Temperature, back.Temperature);
        Assert.Equal(request.FilterThreshold, back.FilterThreshold);
        Assert.Equal(request.NumIter, back.NumIter);
        Assert.Equal(request.Streams, back.Streams);
        Assert.Equal(request.LinearCfg, back.LinearCfg);
        Assert.Equal(request.LinearTemperature, back.LinearTemperature);
    }

    [Fact]
    public void EncodingAndDecodingLeaveNoLiveTensor()
    {
        using var source = Request(guided: true);
        var message = PatchRowCodec.ToMessage(source, level: 1);
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 20; i++)
        {
            using var decoded = PatchRowCodec.ToPatchRequest(message);
            PatchRowCodec.ToMessage(decoded, level: 1);
        }
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void AResumptionPointSurvivesTheWire()
    {
        using var request = Request(guided: false);
        var original = new bool[request.KnownMask.Length];
        original[3] = true;
        using var resumed = new PatchRequest
        {
            Conds = request.Conds, Size = request.Size, KnownPixels = request.KnownPixels, KnownMask = request.KnownMask,
            Cfg = request.Cfg, Temperature = request.Temperature, FilterThreshold = request.FilterThreshold,
            NumIter = request.NumIter, Streams = request.Streams, StartStep = 2, OriginalKnownMask = original,
        };
        var message = PatchRowCodec.ToMessage(resumed, level: 0);
        Assert.Equal(2, message.StartStep);
        using var back = PatchRowCodec.ToPatchRequest(message);
        Assert.Equal(2, back.StartStep);
        Assert.Equal(original, back.OriginalKnownMask);
        message.StartStep = 0;
        var e = Assert.Throws<Grpc.Core.RpcException>(() => PatchRowCodec.Validate(message));
        Assert.Contains("original_known_mask", e.Status.Detail);
    }

    [Fact]
    public void RowsWithNothingKnownSendNoPixels()
    {
        using var request = Request(guided: false);
        var message = PatchRowCodec.ToMessage(request, level: 1);
        Assert.True(message.Rows[0].KnownPixels.IsEmpty && message.Rows[0].KnownMask.IsEmpty);
        Assert.Equal(3 * Size * Size, message.Rows[1].KnownPixels.Length);
        Assert.Equal(Size * Size, message.Rows[1].KnownMask.Length);
        Assert.Equal(CondCount * Width * 4, message.Rows[2].Conds.Length);
        Assert.True(message.Rows[2].NullConds.IsEmpty);
    }

    [Fact]
    public void PatchesSurviveTheWireAndSplitRowsGatherInOrder()
    {
        var patches = new byte[7 * 3 * Size * Size];
        new Random(9).NextBytes(patches);
        var response = SamplePatchesResponse.Parser.ParseFrom(PatchRowCodec.ToResponse(patches, 7, Size).ToByteArray());
        Assert.Equal(patches, PatchRowCodec.FromResponse(response, 7, Size));

        var message = new SamplePatchesRequest { Level = 1, PatchSize = Size, CondCount = 1, CondWidth = 1, NumIter = { 3 } };
        for (int r = 0; r < 7; r++) message.Rows.Add(new PatchRow { Stream = (ulong)r });
        var parts = PatchRowCodec.Split(message, 3);
        Assert.Equal([3, 2, 2], parts.Select(p => p.Rows.Count));
        Assert.Equal(Enumerable.Range(0, 7).Select(r => (ulong)r), parts.SelectMany(p => p.Rows).Select(r => r.Stream));
        Assert.All(parts, p => Assert.Equal(PatchRowCodec.HeaderOf(message), PatchRowCodec.HeaderOf(p)));
        Assert.All(PatchRowCodec.Split(message, 100), p => Assert.Single(p.Rows));   // never an empty part
    }

    [Fact]
    public void AReplyOfTheWrongShapeIsInternalNamingTheField()
    {
        var response = PatchRowCodec.ToResponse(new byte[2 * 3 * Size * Size], 2, Size);
        var count = Assert.Throws<RpcException>(() => PatchRowCodec.FromResponse(response, 3, Size));
        Assert.Equal(StatusCode.Internal, count.StatusCode);
        Assert.Contains("patches", count.Status.Detail);
        response.Patches[1] = ByteString.CopyFrom(new byte[5]);
        var size = Assert.Throws<RpcException>(() => PatchRowCodec.FromResponse(response, 2, Size));
        Assert.Contains("patches[1]", size.Status.Detail);
    }

    public static TheoryData<string, string> BadRequests => new()
    {
        { "cond_width", "cond_width" },
        { "cond_count", "cond_count" },
        { "patch_size", "patch_size" },
        { "level", "level" },
        { "num_iter", "num_iter" },
        { "num_iter_zero", "num_iter[1]" },
        { "no_rows", "rows" },
        { "short_conds", "rows[2].conds" },
        { "null_conds_unguided", "rows[0].null_conds" },
        { "null_conds_missing", "rows[4].null_conds" },
        { "known_pixels_size", "rows[1].known_pixels" },
        { "known_mask_size", "rows[1].known_mask" },
        { "known_mask_value", "rows[3].known_mask" },
        { "mask_without_pixels", "rows[3].known_pixels" },
        { "cfg_nan", "rows[0].cfg" },
        { "temperature_inf", "rows[4].temperature" },
        { "conds_nan", "rows[1].conds" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public void BadInputIsInvalidArgumentNamingTheField(string defect, string field)
    {
        using var request = Request(guided: defect == "null_conds_missing");
        var message = PatchRowCodec.ToMessage(request, level: 1);
        switch (defect)
        {
            case "cond_width": message.CondWidth = Width + 1; break;
            case "cond_count": message.CondCount = 1; break;
            case "patch_size": message.PatchSize = 8; break;
            case "level": message.Level = 2; break;
            case "num_iter": message.NumIter.Clear(); break;
            case "num_iter_zero": message.NumIter[1] = 0; break;
            case "no_rows": message.Rows.Clear(); break;
            case "short_conds": message.Rows[2].Conds = ByteString.CopyFrom(message.Rows[2].Conds.Span[4..]); break;
            case "null_conds_unguided": message.Rows[0].NullConds = message.Rows[0].Conds; break;
            case "null_conds_missing": message.Rows[4].NullConds = ByteString.Empty; break;
            case "known_pixels_size": message.Rows[1].KnownPixels = ByteString.CopyFrom(message.Rows[1].KnownPixels.Span[1..]); break;
            case "known_mask_size": message.Rows[1].KnownMask = ByteString.CopyFrom(message.Rows[1].KnownMask.Span[2..]); break;
            case "known_mask_value": message.Rows[3].KnownMask = ByteString.CopyFrom(Enumerable.Repeat((byte)2, Size * Size).ToArray()); break;
            case "mask_without_pixels": message.Rows[3].KnownPixels = ByteString.Empty; break;
            case "cfg_nan": message.Rows[0].Cfg = float.NaN; break;
            case "temperature_inf": message.Rows[4].Temperature = float.PositiveInfinity; break;
            case "conds_nan":
                var bytes = message.Rows[1].Conds.ToByteArray();
                BitConverter.GetBytes(float.NaN).CopyTo(bytes, 8);
                message.Rows[1].Conds = ByteString.CopyFrom(bytes);
                break;
        }
        var error = Assert.Throws<RpcException>(() => PatchRowCodec.Validate(message, Shape));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith(field + " ", error.Status.Detail);
        var details = error.GetRpcStatus()?.GetDetail<BadRequest>();
        Assert.NotNull(details);
        Assert.Contains(details.FieldViolations, v => v.Field == field);
    }

    [Fact]
    public void ShapesFollowTheModel()
    {
        var config = TestModel.Model.Config;   // sizes 16, 4, 1; widths 64, 32, 16; MAR, MAR
        Assert.Equal(new LevelShape(0, 16, 64, 5, 5, 2), LevelShape.Of(config, 0));
        Assert.Equal(new LevelShape(1, 4, 64, 5, 5, 1), LevelShape.Of(config, 1));
        // The pixel head reads one condition, so the MAR level above hands down only that one.
        Assert.Equal(new LevelShape(2, 1, 32, 1, 1, 0), LevelShape.Of(config, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => LevelShape.Of(config, 3));
    }
}
