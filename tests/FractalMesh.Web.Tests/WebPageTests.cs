using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FractalMesh.Imaging;
using Microsoft.Playwright;
using Xunit;
using Xunit.Abstractions;

namespace FractalMesh.Web.Tests;

/// <summary>
/// The gateway's web page in a real browser against a real gateway: a generation watched step by step, an
/// inpainting whose unpainted pixels come back byte for byte, a cancel, errors in plain words, and the page's own endpoint.
/// </summary>
[Collection(WebCollection.Name)]
public sealed class WebPageTests(WebFixture web, ITestOutputHelper output)
{
    const int Size = 32; // the emoji demo model's canvas

    [Fact]
    public async Task GenerateShowsAPreviewAtEveryStepBeforeTheFinalImage()
    {
        var timer = Stopwatch.StartNew();
        await using var page = await web.OpenAsync();
        var p = page.Page;
        // The form starts from the settings the demo model recommends (its metadata, through GET /v1/model).
        using var described = JsonDocument.Parse(await web.Rest.GetStringAsync("/v1/model"));
        var recommended = described.RootElement.GetProperty("recommended");
        Assert.Equal(JsonValueKind.Object, recommended.ValueKind);
        Assert.Equal(recommended.GetProperty("cfg").GetSingle(), float.Parse(await p.InputValueAsync("#cfg"), CultureInfo.InvariantCulture));
        Assert.Equal(recommended.GetProperty("temperature").GetSingle(), float.Parse(await p.InputValueAsync("#temperature"), CultureInfo.InvariantCulture));
        string cfgSchedule = recommended.GetProperty("cfgSchedule").GetString()!;
        Assert.Equal(cfgSchedule, await p.InputValueAsync("#cfg-schedule"));
        Assert.Equal(recommended.GetProperty("temperatureSchedule").GetString(), await p.InputValueAsync("#temperature-schedule"));
        float filter = recommended.GetProperty("filter").GetSingle();
        Assert.Equal(filter, float.Parse(await p.InputValueAsync("#filter"), CultureInfo.InvariantCulture));
        string info = (await p.TextContentAsync("#model-info"))!;
        Assert.Contains("recommended settings", info);
        // The line names the filter only where it is not the API's default (index.html's 0.0001).
        Assert.Equal(filter != 1e-4f, info.Contains($", filter {filter.ToString(CultureInfo.InvariantCulture)}", StringComparison.Ordinal));

        await p.SelectOptionAsync("#class", "2"); // Animals & Nature
        await p.FillAsync("#seed", "7");
        await p.FillAsync("#cfg", "3");
        await p.FillAsync("#temperature", "2");
        await p.SelectOptionAsync("#temperature-schedule", "linear");
        await p.ClickAsync("#generate");
        Assert.Equal("done", await page.WaitForStateAsync("done", "error", "cancelled"));

        // Every picture the stage showed, in order: previews while the job ran, then the final image.
        var stage = await page.StageSourcesAsync();
        Assert.NotEmpty(stage);
        var (finalKind, finalSrc) = stage[^1];
        Assert.Equal("image", finalKind);
        var previews = stage[..^1];
        Assert.All(previews, s => Assert.Equal("preview", s.Kind));
        var distinct = previews.Select(s => s.Src).Where(s => s != finalSrc).Distinct().ToArray();
        Assert.True(distinct.Length >= 3, $"{distinct.Length} distinct previews before the final image; want at least 3");
        // A preview is the canvas with the pixels not generated yet in grey; the first ones have some.
        Assert.Contains(distinct, src => HasGreyPixels(DataUrlBytes(src)));
        Assert.Equal(16 + 1, await p.Locator("#steps li").CountAsync()); // default 16 level-0 steps, and the final image
        output.WriteLine($"{previews.Length} previews ({distinct.Length} distinct) before the final image");

        // The download is the final image, and the same bytes as the synchronous API with the same settings (a constant
        // temperature 2 gives other bytes, so the page sent the schedule).
        var downloaded = await DownloadAsync(p, "generated.png");
        Assert.Equal(DataUrlBytes(finalSrc), downloaded);
        // The guidance schedule and the filter are the recommended ones the form started with.
        string filterJson = filter.ToString(CultureInfo.InvariantCulture);
        var expected = await GenerateSyncAsync($$$"""{"classLabels":[2],"count":1,"seed":"7","params":{"cfg":3,"cfgSchedule":"{{{cfgSchedule}}}","temperature":2,"temperatureSchedule":"linear","filterThreshold":{{{filterJson}}},"numIter":[16,8]}}""");
        Assert.Equal(Pixels(expected), Pixels(downloaded));
        var constant = await GenerateSyncAsync($$$"""{"classLabels":[2],"count":1,"seed":"7","params":{"cfg":3,"cfgSchedule":"{{{cfgSchedule}}}","temperature":2,"filterThreshold":{{{filterJson}}},"numIter":[16,8]}}""");
        Assert.NotEqual(Pixels(constant), Pixels(downloaded));
        Assert.Contains("Animals & Nature · seed 7", await p.TextContentAsync("#status"));

        await page.ScreenshotAsync("generate-done.png");
        if (Environment.GetEnvironmentVariable("FRACTALMESH_UPDATE_DOCS") == "1")
        {
            // The README's screenshot: FRACTALMESH_UPDATE_DOCS=1 dotnet test tests/FractalMesh.Web.Tests -c Release
            string docs = Path.Combine(WebFixture.RepositoryRoot, "docs", "web-page.png");
            Directory.CreateDirectory(Path.GetDirectoryName(docs)!);
            await p.ScreenshotAsync(new PageScreenshotOptions { Path = docs, Clip = new Clip { X = 0, Y = 0, Width = 1000, Height = 760 } });
        }
        Assert.Empty(page.ScriptErrors);
        output.WriteLine($"generate: {timer.Elapsed.TotalSeconds:F1}s");
    }

    [Fact]
    public async Task InpaintingKeepsEveryUnpaintedPixelOfTheUploadedImage()
    {
        var timer = Stopwatch.StartNew();
        // The input: a real picture of another class, uploaded as a file.
        byte[] input = await GenerateSyncAsync("""{"classLabels":[0],"count":1,"seed":"3","params":{"cfg":3}}""");
        string inputPath = Path.Combine(WebFixture.Artifacts, "inpaint-input.png");
        await File.WriteAllBytesAsync(inputPath, input);

        await using var page = await web.OpenAsync();
        var p = page.Page;
        await p.SetInputFilesAsync("#upload", inputPath);
        Assert.Equal("loaded", await page.WaitForStateAsync("loaded", "error"));
        Assert.Equal(Convert.ToBase64String(input), DataUrlBase64((await page.StageSourcesAsync())[^1].Src));

        // Paint a thick stroke across the middle with the mouse.
        await p.Locator("#brush").FillAsync("5");
        var box = (await p.Locator("#mask").BoundingBoxAsync())!;
        await p.Mouse.MoveAsync(box.X + box.Width * 0.25f, box.Y + box.Height * 0.55f);
        await p.Mouse.DownAsync();
        await p.Mouse.MoveAsync(box.X + box.Width * 0.75f, box.Y + box.Height * 0.45f, new MouseMoveOptions { Steps = 12 });
        await p.Mouse.MoveAsync(box.X + box.Width * 0.6f, box.Y + box.Height * 0.75f, new MouseMoveOptions { Steps = 6 });
        await p.Mouse.UpAsync();
        Assert.Contains("pixels to generate", await p.TextContentAsync("#mask-info"));
        await page.ScreenshotAsync("inpaint-mask.png");

        // Edit with another class.
        await p.SelectOptionAsync("#class", "2");
        await p.FillAsync("#seed", "11");
        await p.FillAsync("#cfg", "3");
        var request = await p.RunAndWaitForRequestAsync(() => p.ClickAsync("#inpaint"),
            r => r.Method == "POST" && r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
        Assert.Equal("done", await page.WaitForStateAsync("done", "error", "cancelled"));
        var sent = JsonNode.Parse(request.PostData!)!["inpaint"]!;
        Assert.Equal(Convert.ToBase64String(input), (string?)sent["imagePng"]); // the file's own bytes, not a re-encoding
        var (mask, mw, mh) = PngImage.Decode(Convert.FromBase64String((string)sent["maskPng"]!), "mask");
        Assert.Equal((Size, Size), (mw, mh));

        byte[] result = await DownloadAsync(p, "inpainted.png");
        var before = Pixels(input);
        var after = Pixels(result);
        const int plane = Size * Size;
        int kept = 0, generated = 0, changed = 0;
        for (int i = 0; i < plane; i++)
        {
            bool keep = mask[i] < 128; // white (red ≥ 128) means generate, as the gateway reads masks
            if (keep)
            {
                kept++;
                for (int c = 0; c < 3; c++)
                    Assert.True(before[c * plane + i] == after[c * plane + i],
                        $"unpainted pixel ({i % Size}, {i / Size}) channel {c}: {before[c * plane + i]} in, {after[c * plane + i]} out");
            }
            else
            {
                generated++;
                if (Enumerable.Range(0, 3).Any(c => before[c * plane + i] != after[c * plane + i])) changed++;
            }
        }
        Assert.InRange(generated, 20, plane / 2);
        Assert.True(changed > 0, "inpainting changed none of the painted pixels");
        output.WriteLine($"inpaint: {kept} pixels kept byte for byte, {generated} painted ({changed} changed); {timer.Elapsed.TotalSeconds:F1}s");
        await page.ScreenshotAsync("inpaint-done.png");
        Assert.Empty(page.ScriptErrors);
    }

    [Fact]
    public async Task OutpaintingMovesThePictureAndKeepsItExactly()
    {
        byte[] input = await GenerateSyncAsync("""{"classLabels":[3],"count":1,"seed":"5"}""");
        string inputPath = Path.Combine(WebFixture.Artifacts, "outpaint-input.png");
        await File.WriteAllBytesAsync(inputPath, input);

        await using var page = await web.OpenAsync();
        var p = page.Page;
        await p.SetInputFilesAsync("#upload", inputPath);
        Assert.Equal("loaded", await page.WaitForStateAsync("loaded", "error"));
        const int dx = 8, dy = -4;
        await p.FillAsync("#shift-x", dx.ToString());
        await p.FillAsync("#shift-y", dy.ToString());
        var request = await p.RunAndWaitForRequestAsync(() => p.ClickAsync("#outpaint"),
            r => r.Method == "POST" && r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
        Assert.Equal("done", await page.WaitForStateAsync("done", "error", "cancelled"));
        var sent = JsonNode.Parse(request.PostData!)!["outpaint"]!;
        Assert.Equal((dx, 0), ((int)sent["x"]!, (int)sent["y"]!));

        // What stays on the canvas is the picture moved by (dx, dy), byte for byte; the page cropped it in the browser.
        byte[] result = await DownloadAsync(p, "outpainted.png");
        var before = Pixels(input);
        var after = Pixels(result);
        const int plane = Size * Size;
        int w = Size - Math.Abs(dx), h = Size - Math.Abs(dy), sx = Math.Max(0, -dx), sy = Math.Max(0, -dy), x0 = Math.Max(0, dx), y0 = Math.Max(0, dy);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    Assert.True(before[c * plane + (sy + y) * Size + sx + x] == after[c * plane + (y0 + y) * Size + x0 + x],
                        $"input pixel ({sx + x}, {sy + y}) channel {c} did not arrive at ({x0 + x}, {y0 + y})");
        await page.ScreenshotAsync("outpaint-done.png");
        Assert.Empty(page.ScriptErrors);
    }

    [Fact]
    public async Task CancelStopsTheRunningJob()
    {
        var timer = Stopwatch.StartNew();
        await using var page = await web.OpenAsync();
        var p = page.Page;
        // The longest generation the model allows: 64 level-0 steps with guidance.
        await p.FillAsync("#iter-0", "64");
        await p.FillAsync("#iter-1", "16");
        await p.FillAsync("#cfg", "3");
        await p.ClickAsync("#generate");
        await p.WaitForFunctionAsync("() => document.body.dataset.state === 'running' && Number(document.getElementById('status').dataset.step) >= 2",
            null, new PageWaitForFunctionOptions { PollingInterval = 10 });
        await p.ClickAsync("#cancel");
        Assert.Equal("cancelled", await page.WaitForStateAsync("cancelled", "done", "error"));
        string status = (await p.TextContentAsync("#status"))!;
        Assert.Contains("Cancelled after step", status);
        await page.ScreenshotAsync("cancel.png");

        // The gateway agrees: the job is cancelled, short of its 64 steps.
        string id = (await p.TextContentAsync("#job"))!.Replace("job ", "").Trim();
        using var job = JsonDocument.Parse(await web.Rest.GetStringAsync($"/v1/jobs/{id}"));
        Assert.Equal("JOB_STATE_CANCELLED", job.RootElement.GetProperty("state").GetString());
        int step = job.RootElement.GetProperty("step").GetInt32();
        Assert.InRange(step, 2, 63);
        Assert.True(await p.IsEnabledAsync("#generate"));
        Assert.True(await p.IsDisabledAsync("#cancel"));
        output.WriteLine($"cancel: '{status}' (gateway: step {step} of 64); {timer.Elapsed.TotalSeconds:F1}s");
        Assert.Empty(page.ScriptErrors);
    }

    [Fact]
    public async Task AnInvalidSettingShowsTheGatewaysReasonInPlainWords()
    {
        await using var page = await web.OpenAsync();
        var p = page.Page;
        await p.FillAsync("#cfg", "99");
        await p.FillAsync("#iter-1", "0");
        await p.FillAsync("#filter", "2");
        var response = await p.RunAndWaitForResponseAsync(() => p.ClickAsync("#generate"), r => r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
        Assert.Equal(400, response.Status); // the gateway's verdict, not the page's
        Assert.Equal("error", await page.WaitForStateAsync("error"));
        var error = p.Locator("#error");
        Assert.True(await error.IsVisibleAsync());
        string text = (await error.TextContentAsync())!;
        Assert.Contains("The gateway did not accept the request", text);
        Assert.Contains("Guidance: 99 is outside 1..50", text);
        Assert.Contains("Iterations at level 1: 0 is outside 1..16", text);
        Assert.Contains("Filter threshold: 2 is outside [0, 1]", text);
        Assert.Equal("true", await p.GetAttributeAsync("#filter", "aria-invalid"));
        Assert.Equal("true", await p.GetAttributeAsync("#cfg", "aria-invalid"));
        Assert.Equal("true", await p.GetAttributeAsync("#iter-1", "aria-invalid"));
        Assert.Equal("Nothing was generated.", await p.TextContentAsync("#status"));
        await page.ScreenshotAsync("error.png");

        // Fixed, the same page generates and the error goes away.
        await p.FillAsync("#cfg", "2");
        await p.FillAsync("#iter-1", "8");
        await p.FillAsync("#filter", "0.001");
        await p.ClickAsync("#generate");
        Assert.Equal("done", await page.WaitForStateAsync("done", "error"));
        Assert.False(await error.IsVisibleAsync());
        Assert.Null(await p.GetAttributeAsync("#cfg", "aria-invalid"));
        Assert.Empty(page.ScriptErrors);
    }

    [Fact]
    public async Task ABusyGatewayIsExplainedAsBusy()
    {
        // Fill the gateway: one long job running, one waiting (the test gateway queues at most one).
        string blocker = """{"generate":{"classLabels":[1],"count":16,"seed":"1","params":{"cfg":3,"numIter":[64,16]}}}""";
        var running = await SubmitAsync(blocker);
        await WaitForJobStateAsync(running, "JOB_STATE_RUNNING");
        var queued = await SubmitAsync(blocker);
        try
        {
            await using var page = await web.OpenAsync();
            var p = page.Page;
            var response = await p.RunAndWaitForResponseAsync(() => p.ClickAsync("#generate"), r => r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
            Assert.Equal(429, response.Status);
            Assert.Equal("error", await page.WaitForStateAsync("error"));
            Assert.Contains("The gateway is busy right now", await p.TextContentAsync("#error"));
            Assert.Contains("Wait a moment and try again", await p.TextContentAsync("#error"));
            await page.ScreenshotAsync("busy.png");
            Assert.Empty(page.ScriptErrors);
        }
        finally
        {
            foreach (var id in new[] { queued, running }) (await web.Rest.DeleteAsync($"/v1/jobs/{id}")).Dispose();
        }
    }

    [Fact]
    public async Task ThePageAndTheModelDescriptionAreServed()
    {
        using var html = await web.Rest.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, html.StatusCode);
        Assert.Equal("text/html", html.Content.Headers.ContentType?.MediaType);
        Assert.Contains("default-src 'self'", html.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Contains("<script src=\"app.js\"", await html.Content.ReadAsStringAsync());
        using var script = await web.Rest.GetAsync("/app.js");
        Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        // Revalidation: the same file answers 304 to its ETag.
        using var again = new HttpRequestMessage(HttpMethod.Get, "/app.js");
        again.Headers.IfNoneMatch.Add(script.Headers.ETag!);
        using var notModified = await web.Rest.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);

        using var model = JsonDocument.Parse(await web.Rest.GetStringAsync("/v1/model"));
        var m = model.RootElement;
        Assert.Equal(Size, m.GetProperty("imageSize").GetInt32());
        Assert.Equal(9, m.GetProperty("classCount").GetInt32());
        Assert.Equal("Animals & Nature", m.GetProperty("classNames")[2].GetString());
        Assert.Equal(2, m.GetProperty("levels").GetInt32());
        Assert.Equal([64, 16], m.GetProperty("patchesPerLevel").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([16, 8], m.GetProperty("defaultNumIter").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(50, m.GetProperty("limits").GetProperty("maxCfg").GetSingle());
        // The demo model's recommended settings, as `fractalmesh export --recommend` stored them.
        var r = m.GetProperty("recommended");
        Assert.InRange(r.GetProperty("cfg").GetSingle(), 1, 50);
        Assert.Contains(r.GetProperty("cfgSchedule").GetString(), new[] { "linear", "constant" });
        Assert.InRange(r.GetProperty("temperature").GetSingle(), 0.01f, 100);
        Assert.Contains(r.GetProperty("temperatureSchedule").GetString(), new[] { "linear", "constant" });
        Assert.InRange(r.GetProperty("filter").GetSingle(), 1e-6f, 1);
        Assert.Equal(5, r.EnumerateObject().Count());
    }

    async Task<string> SubmitAsync(string json)
    {
        using var response = await web.Rest.PostAsync("/v1/jobs", new StringContent(json, Encoding.UTF8, "application/json"));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode}: {body}");
        using var job = JsonDocument.Parse(body);
        return job.RootElement.GetProperty("id").GetString()!;
    }

    async Task WaitForJobStateAsync(string id, string state)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            using var job = JsonDocument.Parse(await web.Rest.GetStringAsync($"/v1/jobs/{id}"));
            last = job.RootElement.GetProperty("state").GetString()!;
            if (last == state) return;
            await Task.Delay(20);
        }
        Assert.Fail($"job {id} is {last}, not {state}, after 30 s");
    }

    /// <summary>One image from the synchronous REST API: its PNG bytes.</summary>
    async Task<byte[]> GenerateSyncAsync(string json)
    {
        using var response = await web.Rest.PostAsync("/v1/images:generate", new StringContent(json, Encoding.UTF8, "application/json"));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode}: {body}");
        using var result = JsonDocument.Parse(body);
        return result.RootElement.GetProperty("images")[0].GetProperty("png").GetBytesFromBase64();
    }

    /// <summary>Clicks the page's download link; answers the file's bytes, kept under the artifacts folder.</summary>
    static async Task<byte[]> DownloadAsync(IPage page, string name)
    {
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#download"));
        Assert.EndsWith(".png", download.SuggestedFilename);
        string path = Path.Combine(WebFixture.Artifacts, name);
        await download.SaveAsAsync(path);
        return await File.ReadAllBytesAsync(path);
    }

    static string DataUrlBase64(string src)
    {
        const string prefix = "data:image/png;base64,";
        Assert.StartsWith(prefix, src);
        return src[prefix.Length..];
    }

    static byte[] DataUrlBytes(string src) => Convert.FromBase64String(DataUrlBase64(src));

    static byte[] Pixels(byte[] png)
    {
        var (planar, w, h) = PngImage.Decode(png, "png");
        Assert.Equal((Size, Size), (w, h));
        return planar;
    }

    /// <summary>Whether a PNG (a preview: the canvas inside a 1-pixel white gutter) has mid-grey pixels, the ones not generated yet.</summary>
    static bool HasGreyPixels(byte[] png)
    {
        var (planar, w, h) = PngImage.Decode(png, "preview");
        int plane = w * h;
        for (int i = 0; i < plane; i++)
            if (planar[i] == 128 && planar[plane + i] == 128 && planar[2 * plane + i] == 128) return true;
        return false;
    }
}
