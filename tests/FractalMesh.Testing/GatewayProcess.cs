using System.Diagnostics;
using System.Net;
using System.Text;
using FractalMesh.Client;
using FractalMesh.Protos.Api;
using Xunit;

namespace FractalMesh.Testing;

/// <summary>
/// A real gateway process on loopback, started from the built dll with the tiny reference model on two free ports
/// (gRPC over HTTP/2, REST over HTTP/1.1), shared by the tests of <see cref="GatewayCollection"/> and killed at the end.
/// Fault tests start their own with extra settings (<see cref="StartAsync"/>) and kill them with SIGKILL (<see cref="Kill"/>).
/// </summary>
public sealed class GatewayProcess : IAsyncLifetime, IAsyncDisposable
{
    /// <summary>The limits the tests probe: small enough to exceed cheaply.</summary>
    public const int MaxImagesPerRequest = 8, MaxImageBytes = 16 * 1024, MaxRequestBytes = 64 * 1024, MaxConcurrent = 1, MaxQueued = 2;

    /// <summary>The model the gateway serves: the tiny reference case.</summary>
    public static string ModelFolder => TestPaths.TinyModelFolder;

    public static string GatewayDll => TestPaths.GatewayDll;

    readonly StringBuilder log = new();
    readonly string[] settings;
    readonly TlsCertificate? tls;
    Process? process;

    public GatewayProcess() : this([]) { }

    /// <param name="settings">Extra <c>--Gateway:Key=value</c> arguments; they come last, so they override the defaults.</param>
    /// <param name="tls">Serve both ports over https with this certificate (then <see cref="Rest"/> trusts it).</param>
    GatewayProcess(IEnumerable<string> settings, TlsCertificate? tls = null)
    {
        this.settings = settings.ToArray();
        this.tls = tls;
    }

    /// <summary>Starts a gateway serving gRPC and REST over TLS with <paramref name="certificate"/> and waits until it is ready.</summary>
    public static async Task<GatewayProcess> StartTlsAsync(TlsCertificate certificate, params string[] settings)
    {
        var gateway = new GatewayProcess(settings, certificate);
        try { await gateway.InitializeAsync(); }
        catch { await gateway.DisposeAsync(); throw; }
        return gateway;
    }

    /// <summary>A client of this gateway's gRPC API sending <paramref name="apiKey"/> (none when null); the caller disposes it.</summary>
    public FractalMeshClient ClientWithKey(string? apiKey) =>
        new(new FractalMeshClientOptions { Address = GrpcAddress, ApiKey = apiKey, MaxAttempts = 1, MaxMessageBytes = int.MaxValue });

    /// <summary>Starts a gateway with extra settings and waits until it is ready.</summary>
    public static async Task<GatewayProcess> StartAsync(params string[] settings)
    {
        var gateway = new GatewayProcess(settings);
        try { await gateway.InitializeAsync(); }
        catch { await gateway.DisposeAsync(); throw; }
        return gateway;
    }

    public Uri GrpcAddress { get; private set; } = null!;
    public Uri RestAddress { get; private set; } = null!;
    /// <summary>The gateway's public API over gRPC, as its callers see it.</summary>
    public FractalMeshClient Client { get; private set; } = null!;
    /// <summary>The image methods' stub on <see cref="Client"/>'s channel, for calls with options of a test's own.</summary>
    public ImageGeneration.ImageGenerationClient Grpc => Client.Images;
    /// <summary>The job methods' stub on <see cref="Client"/>'s channel.</summary>
    public Protos.Api.Jobs.JobsClient Jobs => Client.Jobs;
    public HttpClient Rest { get; private set; } = null!;

    /// <summary>What the gateway printed so far, for failure messages.</summary>
    public string Log { get { lock (log) return log.ToString(); } }

    public bool IsRunning => process is { HasExited: false };

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(GatewayDll), $"build the gateway first: {GatewayDll} not found");
        int grpcPort = FreePort(), restPort = FreePort();
        string scheme = tls is null ? "http" : "https";
        GrpcAddress = new Uri($"{scheme}://127.0.0.1:{grpcPort}");
        RestAddress = new Uri($"{scheme}://127.0.0.1:{restPort}");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] args =
        [
            GatewayDll,
            $"--Gateway:ModelPath={ModelFolder}",
            $"--Gateway:GrpcUrl={GrpcAddress}",
            $"--Gateway:RestUrl={RestAddress}",
            $"--Gateway:MaxImagesPerRequest={MaxImagesPerRequest}",
            $"--Gateway:MaxImageBytes={MaxImageBytes}",
            $"--Gateway:MaxRequestBytes={MaxRequestBytes}",
            $"--Gateway:MaxConcurrentRequests={MaxConcurrent}",
            $"--Gateway:MaxQueuedRequests={MaxQueued}",
            "--Logging:LogLevel:Default=Warning",
            .. tls is null ? [] : new[] { $"--Gateway:CertificatePath={tls.PfxPath}", $"--Gateway:CertificatePassword={tls.Password}" },
            .. settings,
        ];
        foreach (var arg in args) start.ArgumentList.Add(arg);
        process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        Rest = new HttpClient(tls is null ? new SocketsHttpHandler() : tls.TrustingHandler()) { BaseAddress = RestAddress, Timeout = TimeSpan.FromSeconds(60) };
        // No retries: the fault tests see every Unavailable as it happens.
        Client = new FractalMeshClient(new FractalMeshClientOptions { Address = GrpcAddress, MaxAttempts = 1, MaxMessageBytes = int.MaxValue });

        // The gateway listens only once the model is loaded and warmed up, so readiness is the first answer.
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            Assert.False(process.HasExited, $"the gateway exited with {(process.HasExited ? process.ExitCode : 0)}:\n{Log}");
            try
            {
                using var ready = await Rest.GetAsync("/healthz/ready");
                if (ready.StatusCode == HttpStatusCode.OK) break;
            }
            catch (HttpRequestException) { }
            Assert.True(DateTime.UtcNow < deadline, $"the gateway did not become ready in 90 s:\n{Log}");
            await Task.Delay(200);
        }
    }

    /// <summary>kill -9: the process gets no chance to release leases or flush anything.</summary>
    public void Kill()
    {
        if (process is { HasExited: false })
        {
            process.Kill(); // SIGKILL on Unix
            process.WaitForExit();
        }
    }

    /// <summary>The readiness endpoint's status code and JSON body.</summary>
    public async Task<(HttpStatusCode Status, string Body)> ReadinessAsync()
    {
        using var response = await Rest.GetAsync("/healthz/ready");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    ValueTask IAsyncDisposable.DisposeAsync() => new(DisposeAsync());

    public async Task DisposeAsync()
    {
        Rest?.Dispose();
        Client?.Dispose();
        if (process is { HasExited: false })
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process?.Dispose();
    }

    static int FreePort() => TestPaths.FreePort();
}
