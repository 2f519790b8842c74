using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using Microsoft.Playwright;
using Xunit;

namespace FractalMesh.Web.Tests;

/// <summary>
/// A real gateway process on loopback (the built dll, the shipped emoji demo model, one libtorch thread) and one headless
/// Chromium driven by Playwright: the system's browser, launched by path (<see cref="ChromiumPath"/>), never a downloaded one.
/// Shared by the tests of <see cref="WebCollection"/>; screenshots and downloads go to <see cref="Artifacts"/>.
/// </summary>
public sealed class WebFixture : IAsyncLifetime
{
    /// <summary>Jobs that may wait on the test gateway: small, so that the busy test fills the queue cheaply.</summary>
    public const int MaxQueuedJobs = 1;

    public static string GatewayDll => Metadata("GatewayDll");
    public static string RepositoryRoot => Metadata("RepositoryRoot");
    public static string ModelPath => Path.Combine(AppContext.BaseDirectory, "models", "emoji32-demo.safetensors");

    /// <summary>Debian's Chromium (apt-get install chromium), or the browser FRACTALMESH_CHROMIUM names.</summary>
    public static string ChromiumPath => Environment.GetEnvironmentVariable("FRACTALMESH_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    /// <summary>Screenshots and downloads of this run: the test output folder's artifacts/.</summary>
    public static string Artifacts { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts");

    readonly StringBuilder log = new();
    Process? gateway;
    IPlaywright? playwright;

    public Uri RestAddress { get; private set; } = null!;
    public HttpClient Rest { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    /// <summary>What the gateway printed so far, for failure messages.</summary>
    public string Log { get { lock (log) return log.ToString(); } }

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(GatewayDll), $"build the gateway first: {GatewayDll} not found");
        Assert.True(File.Exists(ChromiumPath), $"no browser at {ChromiumPath}: install Debian's Chromium (apt-get install chromium) or set FRACTALMESH_CHROMIUM");
        if (Directory.Exists(Artifacts)) Directory.Delete(Artifacts, recursive: true);
        Directory.CreateDirectory(Artifacts);

        var timer = Stopwatch.StartNew();
        var started = StartGatewayAsync();
        // Playwright must never fetch a browser of its own: it drives the one at ChromiumPath.
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        playwright = await Playwright.CreateAsync();
        Browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
            ],
        });
        await started;
        Console.WriteLine($"web fixture: gateway and {Browser.BrowserType.Name} {Browser.Version} ready in {timer.Elapsed.TotalSeconds:F1}s");
    }

    async Task StartGatewayAsync()
    {
        (gateway, RestAddress, Rest) = await LaunchGatewayAsync([$"--Gateway:MaxQueuedJobs={MaxQueuedJobs}"], log);
    }

    /// <summary>
    /// A gateway of a test's own, with extra <c>--Key=value</c> settings (a gateway with API keys), on the same model and
    /// limits as the shared one; killed when disposed.
    /// </summary>
    public async Task<OwnGateway> StartOwnGatewayAsync(params string[] settings)
    {
        var ownLog = new StringBuilder();
        var (process, address, rest) = await LaunchGatewayAsync(settings, ownLog);
        return new OwnGateway(process, address, rest, ownLog);
    }

    /// <summary>Starts the built gateway on two free ports with <paramref name="settings"/> last and waits until it is ready.</summary>
    static async Task<(Process Process, Uri RestAddress, HttpClient Client)> LaunchGatewayAsync(string[] settings, StringBuilder log)
    {
        string Log() { lock (log) return log.ToString(); }
        int grpcPort = FreePort(), restPort = FreePort();
        var restAddress = new Uri($"http://127.0.0.1:{restPort}");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // One libtorch thread (both ways, whichever the gateway honours): with two on a 2-core machine shared with the
        // browser, OpenMP threads spin at barriers waiting for each other.
        start.Environment["OMP_NUM_THREADS"] = "1";
        foreach (var arg in new[]
        {
            GatewayDll,
            $"--Gateway:ModelPath={ModelPath}",
            $"--Gateway:GrpcUrl=http://127.0.0.1:{grpcPort}",
            $"--Gateway:RestUrl={restAddress}",
            "--Gateway:TorchThreads=1",
            "--Logging:LogLevel:Default=Warning",
        }.Concat(settings)) start.ArgumentList.Add(arg);
        var gateway = Process.Start(start)!;
        gateway.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        gateway.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        gateway.BeginOutputReadLine();
        gateway.BeginErrorReadLine();
        var rest = new HttpClient { BaseAddress = restAddress, Timeout = TimeSpan.FromSeconds(60) };

        // The gateway listens only once the model is loaded and warmed up, so readiness is the first answer.
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            Assert.False(gateway.HasExited, $"the gateway exited with {(gateway.HasExited ? gateway.ExitCode : 0)}:\n{Log()}");
            try
            {
                using var ready = await rest.GetAsync("/healthz/ready");
                if (ready.StatusCode == HttpStatusCode.OK) return (gateway, restAddress, rest);
            }
            catch (HttpRequestException) { }
            Assert.True(DateTime.UtcNow < deadline, $"the gateway did not become ready in 90 s:\n{Log()}");
            await Task.Delay(200);
        }
    }

    /// <summary>
    /// A fresh page (own context: no shared storage) on the gateway's page, loaded and ready (the model described, the
    /// form built). It records every picture the page puts on its stage (<see cref="WebPage.StageSourcesAsync"/>) and
    /// every uncaught script error.
    /// </summary>
    /// <param name="gatewayAddress">Another gateway's REST address (<see cref="StartOwnGatewayAsync"/>); the shared one by default.</param>
    public async Task<WebPage> OpenAsync(Uri? gatewayAddress = null)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = (gatewayAddress ?? RestAddress).ToString(),
            ViewportSize = new ViewportSize { Width = 1280, Height = 1000 },
            AcceptDownloads = true,
        });
        context.SetDefaultTimeout(60_000);
        var page = await context.NewPageAsync();
        var web = new WebPage(page);
        // Every src the page gives the stage's picture, with what it said the picture was (preview or image).
        await page.AddInitScriptAsync("""
            (() => {
              window.__stage = [];
              const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, 'src');
              Object.defineProperty(HTMLImageElement.prototype, 'src', {
                ...src,
                set(value) {
                  if (this.id === 'image') window.__stage.push({ kind: this.dataset.kind ?? '', src: String(value) });
                  src.set.call(this, value);
                },
              });
            })();
            """);
        await page.GotoAsync("/");
        await page.WaitForSelectorAsync("body[data-state=idle]");
        return web;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.CloseAsync();
        playwright?.Dispose();
        Rest?.Dispose();
        if (gateway is { HasExited: false })
        {
            gateway.Kill(entireProcessTree: true);
            await gateway.WaitForExitAsync();
        }
        gateway?.Dispose();
    }

    static string Metadata(string key) => typeof(WebFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>A gateway process a test started for itself (<see cref="WebFixture.StartOwnGatewayAsync"/>).</summary>
public sealed class OwnGateway(Process process, Uri restAddress, HttpClient rest, StringBuilder log) : IAsyncDisposable
{
    public Uri RestAddress { get; } = restAddress;
    public HttpClient Rest { get; } = rest;
    public string Log { get { lock (log) return log.ToString(); } }

    public async ValueTask DisposeAsync()
    {
        Rest.Dispose();
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }
}

/// <summary>A page of the gateway's web page in its own browser context, with the script errors it raised.</summary>
public sealed class WebPage : IAsyncDisposable
{
    readonly List<string> errors = [];

    public WebPage(IPage page)
    {
        Page = page;
        page.PageError += (_, error) => { lock (errors) errors.Add(error); };
    }

    public IPage Page { get; }

    /// <summary>Uncaught exceptions of the page's script so far.</summary>
    public IReadOnlyList<string> ScriptErrors { get { lock (errors) return errors.ToArray(); } }

    /// <summary>Every picture put on the stage, in order: (kind, data URL), kind "preview" during a job and "image" otherwise.</summary>
    public async Task<(string Kind, string Src)[]> StageSourcesAsync()
    {
        string json = await Page.EvaluateAsync<string>("() => JSON.stringify(window.__stage)");
        using var entries = System.Text.Json.JsonDocument.Parse(json);
        return entries.RootElement.EnumerateArray()
            .Select(e => (e.GetProperty("kind").GetString()!, e.GetProperty("src").GetString()!)).ToArray();
    }

    /// <summary>Waits until the page's state (body[data-state]) is one of <paramref name="states"/>; answers it.</summary>
    public async Task<string> WaitForStateAsync(params string[] states)
    {
        string selector = string.Join(", ", states.Select(s => $"body[data-state={s}]"));
        await Page.WaitForSelectorAsync(selector);
        return (await Page.GetAttributeAsync("body", "data-state"))!;
    }

    /// <summary>A full-page screenshot under the artifacts folder; answers its path.</summary>
    public async Task<string> ScreenshotAsync(string name)
    {
        string path = Path.Combine(WebFixture.Artifacts, name);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        return path;
    }

    public async ValueTask DisposeAsync() => await Page.Context.CloseAsync();
}

[CollectionDefinition(Name)]
public sealed class WebCollection : ICollectionFixture<WebFixture>
{
    public const string Name = "gateway and browser";
}
