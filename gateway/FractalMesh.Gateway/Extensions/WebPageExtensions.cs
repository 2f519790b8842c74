using System.Collections.Frozen;
using System.Security.Cryptography;
using FractalMesh.Gateway.Generation;
using FractalMesh.Gateway.Validation;
using FractalMesh.Model.Sampling;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Extensions;

/// <summary>
/// The web page: a plain HTML + JS + CSS page at <c>/</c> that generates through the Jobs API with live previews,
/// paints masks for inpainting, outpaints and downloads PNGs, plus <c>GET /v1/model</c>, the served model's shape the page
/// (or any client) builds its form from. The files under <c>wwwroot/</c> are embedded in the assembly, so the page is served
/// the same from the build output, a published folder or a container, whatever the content root.
/// </summary>
public static class WebPageExtensions
{
    const string ResourcePrefix = "wwwroot/";
    static readonly string[] GetOrHead = [HttpMethods.Get, HttpMethods.Head];

    /// <summary>Maps <c>GET /</c>, the page's other files by name, and <c>GET /v1/model</c>.</summary>
    public static WebApplication MapWebPage(this WebApplication app)
    {
        // Anonymous with Auth:Enabled too: the page and the model's shape are public, so the page loads and then asks for
        // an API key, which it sends on the job calls (docs/ARCHITECTURE.md, Security).
        app.MapGet("/v1/model", (IImageGenerator generator, IOptions<GatewayOptions> options) => Describe(generator.Model, options.Value)).AllowAnonymous();
        foreach (var (path, file) in PageFiles.Value)
        {
            app.MapMethods(path, GetOrHead, (HttpContext context) => Serve(context, file)).AllowAnonymous();
            if (path == "/index.html") app.MapMethods("/", GetOrHead, (HttpContext context) => Serve(context, file)).AllowAnonymous();
        }
        return app;
    }

    /// <summary>The served model and the request limits, in the REST API's JSON naming (camelCase).</summary>
    public static ModelInfo Describe(ModelDescription model, GatewayOptions limits) => new(
        model.ImageSize,
        model.ClassCount,
        Enumerable.Range(0, model.ClassCount).Select(i => i < model.ClassNames.Count ? model.ClassNames[i] : $"class {i}").ToArray(),
        model.Levels,
        model.SeqLens,
        model.DefaultNumIter,
        new ModelLimits(1, RequestValidator.MaxCfg, RequestValidator.MaxTemperature, limits.MaxImagesPerRequest, limits.MaxImageBytes),
        model.Recommended);

    /// <summary>What <c>GET /v1/model</c> answers.</summary>
    /// <param name="ImageSize">Side of the square canvas in pixels; inpaint images and masks must be exactly this size.</param>
    /// <param name="ClassCount">Classes 0..ClassCount-1 (-1: unconditional).</param>
    /// <param name="ClassNames">A name per class: the checkpoint's names where it has them, else "class N".</param>
    /// <param name="Levels">Fractal levels: <c>params.numIter</c> takes one value per level.</param>
    /// <param name="PatchesPerLevel">Patches per level: the most iterations a level can take.</param>
    /// <param name="DefaultNumIter">Iterations per level when a request leaves <c>numIter</c> empty.</param>
    /// <param name="Limits">Ranges the gateway enforces.</param>
    /// <param name="Recommended">
    /// The sampling settings the checkpoint recommends for its best samples (<c>cfg</c>, <c>cfgSchedule</c>,
    /// <c>temperature</c>, <c>temperatureSchedule</c>, <c>filter</c>), or null. The page starts its form from them; a request that leaves
    /// a setting out still gets the official default.
    /// </param>
    public sealed record ModelInfo(int ImageSize, int ClassCount, string[] ClassNames, int Levels, int[] PatchesPerLevel,
        int[] DefaultNumIter, ModelLimits Limits, RecommendedSampling? Recommended);

    /// <summary>Request ranges: guidance in [MinCfg, MaxCfg], temperature in (0, MaxTemperature], images and PNG sizes.</summary>
    public sealed record ModelLimits(float MinCfg, float MaxCfg, float MaxTemperature, int MaxImagesPerRequest, int MaxImageBytes);

    sealed record PageFile(byte[] Content, string ContentType, string ETag);

    /// <summary>The embedded files by request path (<c>/index.html</c>, <c>/app.js</c> …).</summary>
    static readonly Lazy<FrozenDictionary<string, PageFile>> PageFiles = new(() =>
    {
        var assembly = typeof(WebPageExtensions).Assembly;
        var files = new Dictionary<string, PageFile>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            // RecursiveDir writes backslashes when built on Windows.
            string name = resource.Replace('\\', '/');
            if (!name.StartsWith(ResourcePrefix, StringComparison.Ordinal)) continue;
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            string etag = $"\"{Convert.ToHexStringLower(SHA256.HashData(bytes).AsSpan(0, 8))}\"";
            files["/" + name[ResourcePrefix.Length..]] = new PageFile(bytes, ContentType(name), etag);
        }
        return files.ToFrozenDictionary(StringComparer.Ordinal);
    });

    static IResult Serve(HttpContext context, PageFile file)
    {
        var headers = context.Response.Headers;
        headers.ETag = file.ETag;
        // Revalidate every time: a new gateway build must never run an old script against a changed API.
        headers.CacheControl = "no-cache";
        headers.XContentTypeOptions = "nosniff";
        headers.ContentSecurityPolicy =
            "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; script-src 'self'; " +
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";
        headers["Referrer-Policy"] = "no-referrer";
        if (context.Request.Headers.IfNoneMatch.Contains(file.ETag)) return Results.StatusCode(StatusCodes.Status304NotModified);
        return Results.Bytes(file.Content, file.ContentType);
    }

    static string ContentType(string name) => Path.GetExtension(name).ToLowerInvariant() switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        ".ico" => "image/x-icon",
        _ => "application/octet-stream",
    };
}
