using System.Diagnostics;
using FractalMesh.Imaging;
using FractalMesh.Gateway.Extensions;
using FractalMesh.Gateway.Generation;
using FractalMesh.Gateway.Validation;
using FractalMesh.Protos.Api;
using FractalMesh.Rpc;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Services;

/// <summary>
/// The public API (protos/fractalmesh.proto), over gRPC and, through JSON transcoding, REST: validate, wait for a
/// generation slot, generate, answer PNGs with each image's seed.
/// </summary>
public sealed class ImageGenerationService(RequestValidator validator, GenerationGate gate, IImageGenerator generator,
    IOptions<GatewayOptions> options, ILogger<ImageGenerationService> logger) : ImageGeneration.ImageGenerationBase
{
    /// <summary>What <c>GET /v1/model</c> answers, as a message; open without a key like that page.</summary>
    [AllowAnonymous]
    public override Task<DescribeModelResponse> DescribeModel(DescribeModelRequest request, ServerCallContext context) =>
        Task.FromResult(Message(WebPageExtensions.Describe(generator.Model, options.Value)));

    /// <summary><c>GET /v1/model</c>'s answer as the gRPC message (no recommendation: <c>recommended</c> unset).</summary>
    public static DescribeModelResponse Message(WebPageExtensions.ModelInfo info)
    {
        var response = new DescribeModelResponse
        {
            ImageSize = info.ImageSize,
            ClassCount = info.ClassCount,
            ClassNames = { info.ClassNames },
            Levels = info.Levels,
            PatchesPerLevel = { info.PatchesPerLevel },
            DefaultNumIter = { info.DefaultNumIter },
            Limits = new ModelLimits
            {
                MinCfg = info.Limits.MinCfg,
                MaxCfg = info.Limits.MaxCfg,
                MaxTemperature = info.Limits.MaxTemperature,
                MaxImagesPerRequest = info.Limits.MaxImagesPerRequest,
                MaxImageBytes = info.Limits.MaxImageBytes,
            },
        };
        if (info.Recommended is { } r)
            response.Recommended = new SamplingParams
            {
                Cfg = r.Cfg, CfgSchedule = r.CfgSchedule, Temperature = r.Temperature, TemperatureSchedule = r.TemperatureSchedule, FilterThreshold = r.Filter,
            };
        return response;
    }

    public override Task<GenerateResponse> Generate(GenerateRequest request, ServerCallContext context) =>
        RunAsync("generate", validator.Generate(request), context);

    public override Task<GenerateResponse> Inpaint(InpaintRequest request, ServerCallContext context) =>
        RunAsync("inpaint", validator.Inpaint(request), context);

    public override Task<GenerateResponse> Outpaint(OutpaintRequest request, ServerCallContext context) =>
        RunAsync("outpaint", validator.Outpaint(request), context);

    async Task<GenerateResponse> RunAsync(string mode, ImageJob job, ServerCallContext context)
    {
        var cancel = context.CancellationToken;
        using var slot = await gate.EnterAsync(cancel);
        var timer = Stopwatch.StartNew();
        IReadOnlyList<byte[]> images;
        // The call's deadline travels down to the level services (distributed mode) with the generation's execution context.
        try
        {
            using (CallDeadline.Use(context.Deadline)) images = await generator.GenerateAsync(job, cancel);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            bool late = context.Deadline <= DateTime.UtcNow;
            throw new RpcException(new Grpc.Core.Status(late ? StatusCode.DeadlineExceeded : StatusCode.Cancelled,
                late ? "the deadline passed before the images were generated" : "the call was cancelled"));
        }
        int size = generator.Model.ImageSize;
        var response = new GenerateResponse { Seconds = timer.Elapsed.TotalSeconds };
        for (int i = 0; i < images.Count; i++)
        {
            response.Images.Add(new GeneratedImage
            {
                Png = ByteString.CopyFrom(PngImage.Encode(images[i], size, size)),
                Seed = job.Images[i].Seed,
                ClassLabel = job.Images[i].Label,
            });
        }
        logger.LogInformation("{Mode}: {Count} image(s) in {Seconds:F2}s", mode, images.Count, response.Seconds);
        return response;
    }
}
