using System.Diagnostics;
using System.Text.RegularExpressions;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace FractalMesh.Testing;

/// <summary>
/// The level service as a real process on loopback (<c>dotnet FractalMesh.LevelService.dll</c>, the settings as
/// <c>--Key=value</c> arguments). On port 0 (the default) the address is read from Kestrel's "Now listening on" line; on a
/// fixed port (a service that must come back on the same address after a restart) it is known in advance. Every console
/// line is kept, by default with the batcher's debug logs (one "queued" line per incoming call, with its deadline).
/// <see cref="Kill"/> is kill -9.
/// </summary>
public sealed partial class LevelServiceProcess : IAsyncDisposable
{
    /// <summary>Warnings, the listening line, and the batcher's debug lines, one line each.</summary>
    public static readonly IReadOnlyList<string> BatcherLogging =
    [
        "--Logging:LogLevel:Default=Warning",
        "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
        "--Logging:LogLevel:FractalMesh=Debug",
        "--Logging:Console:FormatterName=simple",
        "--Logging:Console:FormatterOptions:SingleLine=true",
    ];

    readonly Process process;
    readonly List<string> output = [];
    readonly TaskCompletionSource<string> listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    readonly TlsCertificate? tls;

    LevelServiceProcess(Process process, TlsCertificate? tls)
    {
        this.process = process;
        this.tls = tls;
    }

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Address { get; private set; } = "";

    /// <summary>Every line the process wrote so far (stdout and stderr).</summary>
    public IReadOnlyList<string> Output { get { lock (output) return output.ToList(); } }

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    /// <summary>The tiny model from <paramref name="firstLevel"/> down to the pixel head on one libtorch thread, the service's other defaults.</summary>
    public static Dictionary<string, string> TinyModelSettings(int firstLevel = 1) => new()
    {
        ["Level:Model"] = TestPaths.TinyModelFolder,
        ["Level:FirstLevel"] = firstLevel.ToString(),
        ["Level:TorchThreads"] = "1",
    };

    /// <summary>The tiny model's level 1 and pixel head on one libtorch thread, with small batches and queue.</summary>
    public static Dictionary<string, string> LevelOneSettings(int maxBatchRows = 128, int startDelayMs = 0, int maxQueueRows = 128) => new()
    {
        ["Level:Model"] = TestPaths.TinyModelFolder,
        ["Level:FirstLevel"] = "1",
        ["Level:MaxBatchRows"] = maxBatchRows.ToString(),
        ["Level:StartDelayMilliseconds"] = startDelayMs.ToString(),
        ["Level:MaxQueueRows"] = maxQueueRows.ToString(),
        ["Level:TorchThreads"] = "1",
    };

    /// <summary>
    /// Starts the service and, unless told otherwise, waits until it listens and grpc.health.v1 readiness says SERVING.
    /// </summary>
    /// <param name="settings">Configuration keys and values (<c>Level:FirstLevel</c>).</param>
    /// <param name="port">A fixed loopback port, or 0 for any.</param>
    /// <param name="waitReady">False to return at once (a test of a service that must fail at boot).</param>
    /// <param name="logging">The logging arguments; <see cref="BatcherLogging"/> by default. Keep the listening line when port is 0.</param>
    /// <param name="tls">Serve over https with this certificate (Kestrel's default certificate); readiness is checked trusting it.</param>
    public static async Task<LevelServiceProcess> StartAsync(IReadOnlyDictionary<string, string> settings, int port = 0, bool waitReady = true,
        IEnumerable<string>? logging = null, TlsCertificate? tls = null)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(TestPaths.LevelServiceDll);
        start.ArgumentList.Add($"--urls={(tls is null ? "http" : "https")}://127.0.0.1:{port}");
        if (tls is not null)
        {
            start.ArgumentList.Add($"--Kestrel:Certificates:Default:Path={tls.PfxPath}");
            start.ArgumentList.Add($"--Kestrel:Certificates:Default:Password={tls.Password}");
        }
        foreach (var arg in logging ?? BatcherLogging) start.ArgumentList.Add(arg);
        foreach (var (key, value) in settings) start.ArgumentList.Add($"--{key}={value}");
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var service = new LevelServiceProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"), tls);
        if (port != 0) service.Address = $"{(tls is null ? "http" : "https")}://127.0.0.1:{port}";
        AppDomain.CurrentDomain.ProcessExit += (_, _) => service.Kill();   // never outlive the test run
        service.process.OutputDataReceived += (_, e) => service.Receive(e.Data);
        service.process.ErrorDataReceived += (_, e) => service.Receive(e.Data);
        service.process.BeginOutputReadLine();
        service.process.BeginErrorReadLine();
        if (!waitReady) return service;
        try
        {
            if (port == 0)
            {
                var first = await Task.WhenAny(service.listening.Task, service.process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
                if (first != service.listening.Task)
                    throw new InvalidOperationException($"the level service did not start listening:\n{string.Join("\n", service.Output)}");
                service.Address = service.listening.Task.Result;
            }
            await service.WaitReadyAsync(TimeSpan.FromSeconds(60));
            return service;
        }
        catch
        {
            await service.DisposeAsync();
            throw;
        }
    }

    void Receive(string? line)
    {
        if (line is null) return;
        lock (output) output.Add(line);
        if (ListeningLine().Match(line) is { Success: true } m) listening.TrySetResult(m.Groups[1].Value);
    }

    [GeneratedRegex(@"Now listening on: (https?://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();

    /// <summary>Polls grpc.health.v1 "readiness" until SERVING.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var channel = GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = tls?.TrustingHandler() });
        var health = new Health.HealthClient(channel);
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            if (process.HasExited) throw new InvalidOperationException($"the level service exited with {process.ExitCode}:\n{string.Join("\n", Output)}");
            try
            {
                var reply = await health.CheckAsync(new HealthCheckRequest { Service = "readiness" }, deadline: DateTime.UtcNow.AddSeconds(5));
                if (reply.Status == HealthCheckResponse.Types.ServingStatus.Serving) return;
            }
            catch (Grpc.Core.RpcException) { }
            if (DateTime.UtcNow > until) throw new TimeoutException($"the level service was not ready in {timeout}:\n{string.Join("\n", Output)}");
            await Task.Delay(50);
        }
    }

    /// <summary>Waits until a line written after the first <paramref name="skip"/> lines contains <paramref name="text"/>.</summary>
    public async Task<string> WaitForLineAsync(string text, int skip, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            if (Output.Skip(skip).FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line) return line;
            if (DateTime.UtcNow > until) throw new TimeoutException($"no line with '{text}' in {timeout}:\n{string.Join("\n", Output)}");
            await Task.Delay(10);
        }
    }

    /// <summary>Waits for the process to end by itself; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        process.WaitForExit();   // drains the redirected output
        return process.ExitCode;
    }

    /// <summary>kill -9: the process ends at once, calls in flight included, as a crash would.</summary>
    public void Kill()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }
        }
        catch (InvalidOperationException) { }   // already gone or disposed
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try { await process.WaitForExitAsync(timeout.Token); } catch (OperationCanceledException) { }
        process.Dispose();
    }
}
