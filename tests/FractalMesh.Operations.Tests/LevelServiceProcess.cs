using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// The level service as a real process on loopback (<c>dotnet FractalMesh.LevelService.dll</c>, port 0, settings as
/// arguments), its console lines kept with their logging scopes so that a test can read the trace of each request.
/// </summary>
sealed partial class LevelServiceProcess : IAsyncDisposable
{
    readonly Process process;
    readonly List<string> output = [];
    readonly TaskCompletionSource<string> listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    LevelServiceProcess(Process process) => this.process = process;

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Address { get; private set; } = "";

    public IReadOnlyList<string> Output { get { lock (output) return output.ToList(); } }

    /// <summary>A free loopback port for a listener the process opens itself (the Prometheus endpoint).</summary>
    public static int FreePort()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }

    public static async Task<LevelServiceProcess> StartAsync(IReadOnlyDictionary<string, string> settings)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Repository.LevelServiceDll);
        start.ArgumentList.Add("--urls=http://127.0.0.1:0");
        // Request logs with their scopes: "TraceId:…" says which trace each incoming call belongs to.
        start.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        start.ArgumentList.Add("--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information");
        start.ArgumentList.Add("--Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics=Information");
        start.ArgumentList.Add("--Logging:Console:FormatterName=simple");
        start.ArgumentList.Add("--Logging:Console:FormatterOptions:SingleLine=true");
        start.ArgumentList.Add("--Logging:Console:FormatterOptions:IncludeScopes=true");
        foreach (var (key, value) in settings) start.ArgumentList.Add($"--{key}={value}");
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var service = new LevelServiceProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => service.Kill();
        service.process.OutputDataReceived += (_, e) => service.Receive(e.Data);
        service.process.ErrorDataReceived += (_, e) => service.Receive(e.Data);
        service.process.BeginOutputReadLine();
        service.process.BeginErrorReadLine();
        try
        {
            var first = await Task.WhenAny(service.listening.Task, service.process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
            if (first != service.listening.Task)
                throw new InvalidOperationException($"the level service did not start listening:\n{string.Join("\n", service.Output)}");
            service.Address = service.listening.Task.Result;
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

    void Kill()
    {
        try { if (!process.HasExited) process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try { await process.WaitForExitAsync(timeout.Token); } catch (OperationCanceledException) { }
        process.Dispose();
    }
}
