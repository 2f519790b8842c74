using System.Diagnostics;
using System.Text.RegularExpressions;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace FractalMesh.Rpc.Tests;

/// <summary>
/// The LevelService program as a real process on loopback: started with <c>dotnet FractalMesh.LevelService.dll</c>, the
/// "Level" settings as command-line arguments and port 0; the address is read from Kestrel's "Now listening on" line.
/// </summary>
public sealed partial class LevelServiceProcess : IAsyncDisposable
{
    readonly Process process;
    readonly List<string> output = [];
    readonly TaskCompletionSource<string> listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    LevelServiceProcess(Process process) => this.process = process;

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Address { get; private set; } = "";

    /// <summary>Every line the process wrote so far (stdout and stderr).</summary>
    public IReadOnlyList<string> Output { get { lock (output) return output.ToList(); } }

    public bool HasExited => process.HasExited;
    public int ExitCode => process.ExitCode;

    /// <summary>Settings of the tiny model serving level 1 and the pixel head, with debug logs of the batcher.</summary>
    public static Dictionary<string, string> LevelOneSettings(int maxBatchRows = 128, int startDelayMs = 0, int maxQueueRows = 128) => new()
    {
        ["Level:Model"] = TestModel.Folder,
        ["Level:FirstLevel"] = "1",
        ["Level:MaxBatchRows"] = maxBatchRows.ToString(),
        ["Level:StartDelayMilliseconds"] = startDelayMs.ToString(),
        ["Level:MaxQueueRows"] = maxQueueRows.ToString(),
        ["Level:TorchThreads"] = "1",
    };

    /// <summary>Starts the service and, unless told otherwise, waits until it listens and reports readiness SERVING.</summary>
    public static async Task<LevelServiceProcess> StartAsync(IReadOnlyDictionary<string, string> settings, bool waitReady = true)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(TestModel.LevelServiceDll);
        start.ArgumentList.Add("--urls=http://127.0.0.1:0");
        start.ArgumentList.Add("--Logging:LogLevel:FractalMesh=Debug");
        start.ArgumentList.Add("--Logging:Console:FormatterName=simple");
        start.ArgumentList.Add("--Logging:Console:FormatterOptions:SingleLine=true");
        foreach (var (key, value) in settings) start.ArgumentList.Add($"--{key}={value}");
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var service = new LevelServiceProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => service.Kill();   // never outlive the test run
        service.process.OutputDataReceived += (_, e) => service.Receive(e.Data);
        service.process.ErrorDataReceived += (_, e) => service.Receive(e.Data);
        service.process.BeginOutputReadLine();
        service.process.BeginErrorReadLine();
        if (!waitReady) return service;
        try
        {
            var exited = service.process.WaitForExitAsync();
            var first = await Task.WhenAny(service.listening.Task, exited, Task.Delay(TimeSpan.FromSeconds(60)));
            if (first != service.listening.Task)
                throw new InvalidOperationException($"the level service did not start listening:\n{string.Join("\n", service.Output)}");
            service.Address = service.listening.Task.Result;
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

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();

    /// <summary>Polls grpc.health.v1 "readiness" until SERVING.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var channel = GrpcChannel.ForAddress(Address);
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
            await Task.Delay(100);
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

    /// <summary>Waits for the process to end by itself.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        process.WaitForExit();   // drains the redirected output
        return process.ExitCode;
    }

    /// <summary>Ends this process at once, as a crash would.</summary>
    public void Kill()
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { }   // already gone or disposed
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        try { await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token); } catch (OperationCanceledException) { }
        process.Dispose();
    }
}
