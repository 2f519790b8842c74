using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace FractalMesh.Gateway.Tests;

/// <summary>
/// A level service serving level 1 and the pixel head of the tiny reference model, as a real process on a fixed loopback
/// port (so that a gateway configured with its address reaches it again after a restart), one libtorch thread, debug logs
/// of its batcher (one "queued" line per incoming call, with the call's deadline). <see cref="Kill"/> is kill -9.
/// </summary>
public sealed class LevelServiceProcess : IAsyncDisposable
{
    public static string LevelServiceDll => typeof(LevelServiceProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "LevelServiceDll").Value!;

    readonly Process process;
    readonly List<string> output = [];

    LevelServiceProcess(Process process, string address)
    {
        this.process = process;
        Address = address;
    }

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Address { get; }

    /// <summary>Every line the process wrote so far.</summary>
    public IReadOnlyList<string> Output { get { lock (output) return output.ToList(); } }

    public bool HasExited => process.HasExited;

    /// <summary>A free loopback port (for a service that must come back on the same address).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts level 1 of the tiny model on <paramref name="port"/> and waits until grpc.health.v1 readiness says SERVING.</summary>
    /// <param name="port">The loopback port.</param>
    /// <param name="settings">More <c>--Level:Key=value</c> arguments (they come last and win).</param>
    public static async Task<LevelServiceProcess> StartAsync(int port, params string[] settings)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] args =
        [
            LevelServiceDll,
            $"--urls=http://127.0.0.1:{port}",
            $"--Level:Model={GatewayProcess.ModelFolder}",
            "--Level:FirstLevel=1",
            "--Level:TorchThreads=1",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:FractalMesh=Debug",
            "--Logging:Console:FormatterName=simple",
            "--Logging:Console:FormatterOptions:SingleLine=true",
            .. settings,
        ];
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var service = new LevelServiceProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"), $"http://127.0.0.1:{port}");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => service.Kill();   // never outlive the test run
        service.process.OutputDataReceived += (_, e) => service.Receive(e.Data);
        service.process.ErrorDataReceived += (_, e) => service.Receive(e.Data);
        service.process.BeginOutputReadLine();
        service.process.BeginErrorReadLine();
        try
        {
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
    }

    async Task WaitReadyAsync(TimeSpan timeout)
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
